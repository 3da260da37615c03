// cron-oracle answers "when does this schedule fire next?" with github.com/robfig/cron/v3 itself,
// the parser kube-controller-manager's CronJob controller and Velero use. kubeplane's Python parser
// (operators/core/cron.py) is tested against it: tests/unit/core/test_cron_oracle.py.
//
// Input, one query per line: SPEC<TAB>INSTANT, INSTANT in RFC 3339 (nanoseconds allowed).
// Output, one answer per line: the next firing in RFC 3339 UTC with nanoseconds, "never" when
// Next returns the zero time, or "error<TAB>MESSAGE" when ParseStandard refuses the spec.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		spec, instant, found := strings.Cut(in.Text(), "\t")
		if !found {
			fmt.Fprintln(out, "error\tmalformed query")
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, instant)
		if err != nil {
			fmt.Fprintf(out, "error\tinstant: %v\n", err)
			continue
		}
		schedule, err := cron.ParseStandard(spec)
		if err != nil {
			fmt.Fprintf(out, "error\t%v\n", err)
			continue
		}
		next := schedule.Next(at)
		if next.IsZero() {
			fmt.Fprintln(out, "never")
			continue
		}
		fmt.Fprintln(out, next.UTC().Format(time.RFC3339Nano))
	}
}
