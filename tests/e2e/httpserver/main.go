// httpserver is the e2e tier's workload: a static binary in an image of its own (hack/kind/images.sh),
// so tests run real containers that answer over the pod network without pulling anything.
//
//	GET /         -> "<pod name> <pod IP>[ <VERSION>]\n" (HOSTNAME, POD_IP and VERSION from the environment)
//	GET /healthz  -> "ok"
//	GET /fetch?url=U -> the body of an HTTP GET of U, for pod-to-pod and DNS checks from inside a pod
//	GET /load/start?url=U -> starts sending GETs to U one after another, each on a new connection
//	GET /load/stop        -> stops them and answers {"ok":N,"failed":N,"versions":{...},"errors":[...]}:
//	                         how many succeeded, failed, and answered with each VERSION (a zero-downtime probe)
//	GET /exit?code=N -> answers "exiting N", then the process exits with code N: a real container that
//	                    ends when told (tests/podexit.py's kind driver)
//	GET /file?path=P[&write=D] -> with write, writes D to the file P (created, or replaced) and answers
//	                    "wrote P"; without, answers the file's content: a StatefulSet's claim keeps data
//	GET /burn?millicores=N -> from now on uses N millicores of CPU (busy N/10 ms of every 10 ms per core's
//	                    share, on as many goroutines as whole cores are asked); 0 stops: the autoscaler's load
//
// With EXIT_CODE set, the process exits with that code EXIT_AFTER (a Go duration, default 0s) after it
// starts, without serving first: a batch workload. It logs "start <pod> index=<JOB_COMPLETION_INDEX>".
//
// It listens on :8080 (or $PORT) and exits cleanly on SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuBurner keeps up to 8 goroutines busy: goroutine i burns min(1000, target-1000*i) millicores,
// busy that share of every 10 ms slice and asleep for the rest.
type cpuBurner struct {
	mu     sync.Mutex
	target int64
	alive  [8]bool
}

var burner cpuBurner

func (b *cpuBurner) set(millicores int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.target = millicores
	for i := int64(0); i < (millicores+999)/1000; i++ {
		if !b.alive[i] {
			b.alive[i] = true
			go b.run(i)
		}
	}
}

func (b *cpuBurner) run(i int64) {
	const slice = 10 * time.Millisecond
	for {
		b.mu.Lock()
		share := min(b.target-1000*i, 1000)
		if share <= 0 {
			b.alive[i] = false // the target dropped below this goroutine's core
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		start := time.Now()
		busy := time.Duration(share) * slice / 1000
		for time.Since(start) < busy {
		}
		time.Sleep(slice - busy)
	}
}

// load sends requests until stopped and counts what came back.
type load struct {
	mu       sync.Mutex
	stop     chan struct{}
	done     chan struct{}
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Versions map[string]int `json:"versions"`
	Errors   []string       `json:"errors"`
}

func (l *load) run(url string) {
	defer close(l.done)
	// A new connection per request: every request goes through the Service's load balancing.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		resp, err := client.Get(url)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		l.mu.Lock()
		if err != nil {
			l.Failed++
			if len(l.Errors) < 10 {
				l.Errors = append(l.Errors, err.Error())
			}
		} else {
			l.OK++
			fields := strings.Fields(string(body))
			version := ""
			if len(fields) > 2 {
				version = fields[2]
			}
			l.Versions[version]++
		}
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

// exitLater ends the process with `code` after `after` (a Go duration; empty: at once).
func exitLater(code, after string) {
	n, err := strconv.Atoi(code)
	if err != nil {
		log.Fatalf("EXIT_CODE %q: %v", code, err)
	}
	wait := time.Duration(0)
	if after != "" {
		if wait, err = time.ParseDuration(after); err != nil {
			log.Fatalf("EXIT_AFTER %q: %v", after, err)
		}
	}
	time.Sleep(wait)
	log.Printf("exit %d", n)
	os.Exit(n)
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	name, _ := os.Hostname()
	ip := os.Getenv("POD_IP")
	client := &http.Client{Timeout: 5 * time.Second}

	log.Printf("start %s index=%s", name, os.Getenv("JOB_COMPLETION_INDEX"))
	if code := os.Getenv("EXIT_CODE"); code != "" {
		exitLater(code, os.Getenv("EXIT_AFTER"))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("code")
		if _, err := strconv.Atoi(code); err != nil {
			http.Error(w, "code must be an integer", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "exiting %s\n", code)
		go exitLater(code, "100ms")
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		if path == "" {
			http.Error(w, "path is required", http.StatusBadRequest)
			return
		}
		if r.URL.Query().Has("write") {
			if err := os.WriteFile(path, []byte(r.URL.Query().Get("write")), 0o644); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "wrote %s\n", path)
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		millicores, err := strconv.Atoi(r.URL.Query().Get("millicores"))
		if err != nil || millicores < 0 || millicores > 8000 {
			http.Error(w, "millicores must be an integer from 0 to 8000", http.StatusBadRequest)
			return
		}
		burner.set(int64(millicores))
		fmt.Fprintf(w, "burning %dm\n", millicores)
	})
	version := os.Getenv("VERSION")
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if version != "" {
			fmt.Fprintf(w, "%s %s %s\n", name, ip, version)
			return
		}
		fmt.Fprintf(w, "%s %s\n", name, ip)
	})
	var current *load
	var loadMu sync.Mutex
	mux.HandleFunc("/load/start", func(w http.ResponseWriter, r *http.Request) {
		loadMu.Lock()
		defer loadMu.Unlock()
		if current != nil {
			http.Error(w, "already running", http.StatusConflict)
			return
		}
		current = &load{stop: make(chan struct{}), done: make(chan struct{}), Versions: map[string]int{}, Errors: []string{}}
		go current.run(r.URL.Query().Get("url"))
		io.WriteString(w, "started")
	})
	mux.HandleFunc("/load/stop", func(w http.ResponseWriter, r *http.Request) {
		loadMu.Lock()
		defer loadMu.Unlock()
		if current == nil {
			http.Error(w, "not running", http.StatusConflict)
			return
		}
		close(current.stop)
		<-current.done
		current.mu.Lock()
		defer current.mu.Unlock()
		json.NewEncoder(w).Encode(current)
		current = nil
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})

	server := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	log.Printf("listening on :%s as %s", port, name)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
