"""Back up and restore 10,000 small objects: kubeplane's backup operator vs Velero, same cluster, same MinIO.

    python -m bench.backup [--namespaces 100] [--per-namespace 100] [--objects N] [--no-velero]

Needs the embedded cluster with the backup operator running (`make up`) and, for the Velero column,
`hack/tools.sh velero` (velero v1.17 and velero-plugin-for-aws, built from Go modules and cached; the
benchmark runs it when bin/velero is missing). Steps:

1. Creates namespaces `bench-bk-<i>` holding M objects each (half ConfigMaps, half Secrets, labelled
   `kubeplane.dev/bench=backup`), by server-side apply of one multi-document manifest per namespace,
   a few kubectl processes at a time.
2. kubeplane: a backup.kubeplane.dev Backup of those namespaces (location `default`), then a Restore
   mapping `bench-bk-<i>` -> `kp-r-<i>`; checks the object counts there.
3. Velero: installs its CRDs, starts `velero server` as a local process (namespace `velero`, the AWS
   plugin from the tools cache, no node agent, no snapshots, no file-system backup) with a location
   `default` in the same bucket under the prefix `velero-bench`; the same Backup, then a Restore
   mapping `bench-bk-<i>` -> `v-r-<i>`; checks the counts.

Both are timed from `kubectl apply` of the Backup/Restore object to phase Completed, polled the same
way, and the peak resident memory of each side's process tree (kubeplane's backup operator; Velero's
server and its plugin processes) is read over each operation from the kernel's high-water marks.
Prints a table with the ratio velero / kubeplane (> 1: kubeplane is faster), deletes the bench
namespaces in the background and stops the Velero server. Logs: .kubeplane/logs/velero-bench.log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import ENV, ROOT, PeakRss, apply, kubectl, print_table, require_cluster, wait_until
from operators.core.kube import Kube

LABEL = "kubeplane.dev/bench"
KP_NS = "kubeplane-system"
VELERO_NS = "velero"
KP_API = "backup.kubeplane.dev/v1alpha1"
VELERO_API = "velero.io/v1"
DONE_OK = ("Completed",)
MAX_NAMESPACES = 256  # spec.includedNamespaces and spec.namespaceMapping bounds of the CRDs
DONE_BAD = ("Failed", "PartiallyFailed", "FailedValidation", "Deleting")


# --- the data set ---------------------------------------------------------------------------------

def namespace_manifest(namespace: str, count: int) -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {LABEL: "backup"}}}]
    for j in range(count):
        meta = {"name": f"obj-{j:05d}", "namespace": namespace, "labels": {LABEL: "backup"}}
        if j % 2 == 0:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                         "data": {"key": f"value-{j}", "note": "small bench object"}})
        else:
            docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                         "data": {"key": base64.b64encode(f"secret-{j}".encode()).decode()}})
    return "\n---\n".join(json.dumps(d) for d in docs)


def populate(namespaces: list[str], per_namespace: int, workers: int) -> float:
    start = time.monotonic()
    done = 0

    def one(namespace: str) -> None:
        kubectl("apply", "--server-side", "--field-manager=bench", "-f", "-",
                input=namespace_manifest(namespace, per_namespace))

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, namespaces):
            done += 1
            if done % max(1, len(namespaces) // 10) == 0 or done == len(namespaces):
                print(f"  ... {done}/{len(namespaces)} namespaces applied "
                      f"({done * per_namespace} objects, {time.monotonic() - start:.0f}s)", flush=True)
    return time.monotonic() - start


def counts(prefix: str) -> collections.Counter[str]:
    """Bench objects (ConfigMaps + Secrets carrying the label) per namespace starting with prefix."""
    out = kubectl("get", "configmaps,secrets", "-A", "-l", f"{LABEL}=backup",
                  "-o", "jsonpath={range .items[*]}{.metadata.namespace}{'\\n'}{end}")
    return collections.Counter(ns for ns in out.split() if ns.startswith(prefix))


def verify(prefix: str, n: int, per_namespace: int) -> str:
    found = counts(prefix)
    total = sum(found.values())
    short = [f"{prefix}{i}" for i in range(n) if found.get(f"{prefix}{i}", 0) != per_namespace]
    if short:
        return f"MISMATCH: {total}/{n * per_namespace} objects; {len(short)} namespaces short (e.g. {short[:3]})"
    return f"ok: {total} objects in {n} namespaces"


def bench_namespaces(prefixes: tuple[str, ...]) -> list[str]:
    return [ns for ns in kubectl("get", "namespaces", "-o", "name").split()
            if ns.removeprefix("namespace/").startswith(prefixes)]


def delete_namespaces(prefixes: tuple[str, ...], background: bool = False) -> None:
    names = [ns.removeprefix("namespace/") for ns in bench_namespaces(prefixes)]
    if not names:
        return
    if background:  # hundreds of DELETEs take a while even with --wait=false: don't hold the table back
        subprocess.Popen(["kubectl", "delete", "namespace", "--wait=false", "--ignore-not-found", *names],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    else:
        kubectl("delete", "namespace", "--wait=false", "--ignore-not-found", *names)


# --- timing a Backup / Restore object -------------------------------------------------------------

def phase_of(resource: str, namespace: str, name: str) -> dict[str, Any]:
    out = kubectl("get", resource, "-n", namespace, name, "--ignore-not-found", "-o", "json")
    return json.loads(out).get("status", {}) if out.strip() else {}


def run_to_completion(label: str, resource: str, obj: dict[str, Any], timeout: float) -> tuple[float, dict[str, Any]]:
    """Apply obj, poll until a final phase; return (seconds from before the apply, status)."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    status: dict[str, Any] = {}

    def done() -> tuple[bool, str]:
        nonlocal status
        status = phase_of(resource, namespace, name)
        phase = status.get("phase", "New")
        if phase in DONE_BAD:
            raise RuntimeError(f"{label}: {resource} {name} ended {phase}: {json.dumps(status)[:800]}")
        progress = status.get("progress", {})
        return phase in DONE_OK, f"{phase} {progress}"

    start = time.monotonic()
    apply(obj)
    wait_until(done, timeout=timeout, label=label)
    elapsed = time.monotonic() - start
    print(f"  {label}: {status.get('phase')} after {elapsed:.1f}s, progress {status.get('progress', {})}, "
          f"warnings {status.get('warnings', 0)}, errors {status.get('errors', 0)}", flush=True)
    return elapsed, status


# --- kubeplane ------------------------------------------------------------------------------------

def bench_kubeplane(run: str, namespaces: list[str], timeout: float) -> dict[str, Any]:
    name = f"bench-{run}"
    pid = int((ROOT / ".kubeplane/run/backup.pid").read_text().strip())  # the operator `make up` runs
    print(f"- kubeplane: Backup {name} of {len(namespaces)} namespaces", flush=True)
    memory = PeakRss(pid)
    backup_s, backup = run_to_completion("kubeplane backup", "backups.backup.kubeplane.dev", {
        "apiVersion": KP_API, "kind": "Backup", "metadata": {"name": name, "namespace": KP_NS},
        "spec": {"includedNamespaces": namespaces, "storageLocation": "default", "ttl": "24h"},
    }, timeout)
    backup_mib = memory.mib()
    print(f"- kubeplane: Restore {name} into kp-r-<i>", flush=True)
    memory = PeakRss(pid)
    restore_s, restore = run_to_completion("kubeplane restore", "restores.backup.kubeplane.dev", {
        "apiVersion": KP_API, "kind": "Restore", "metadata": {"name": name, "namespace": KP_NS},
        "spec": {"backupName": name,
                 "namespaceMapping": {ns: ns.replace("bench-bk-", "kp-r-") for ns in namespaces}},
    }, timeout)
    return {"backup": backup_s, "restore": restore_s, "backup_items": backup.get("progress", {}).get("itemsBackedUp"),
            "restore_items": restore.get("progress", {}).get("itemsRestored"), "name": name,
            "backup_mib": backup_mib, "restore_mib": memory.mib()}


def raw_create_rate(count: int = 2000, concurrency: int = 50) -> float:
    """The API server's own create throughput on this machine: `count` small ConfigMaps POSTed by a bare
    client (no rate limit, `concurrency` in flight) into namespace bench-bk-raw; objects per second."""
    async def go() -> float:
        os.environ.pop("KUBEPLANE_KUBE_API_QPS", None)  # no client-side limit: the server is the limit
        async with await Kube.connect(pool_size=concurrency) as kube:
            await kube.create("/api/v1/namespaces", {"metadata": {"name": "bench-bk-raw", "labels": {LABEL: "raw"}}})
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with gate:
                    await kube.create("/api/v1/namespaces/bench-bk-raw/configmaps", {
                        "metadata": {"name": f"raw-{i:05d}", "labels": {LABEL: "raw"}},
                        "data": {"key": f"value-{i}", "note": "small bench object"}})
            started = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(count)))
            return count / (time.monotonic() - started)
    return asyncio.run(go())


# --- Velero ---------------------------------------------------------------------------------------

def velero_dir() -> Path | None:
    binary = ROOT / "bin" / "velero"
    if not binary.exists():
        print("- velero: bin/velero missing, building it: hack/tools.sh velero", flush=True)
        result = subprocess.run([str(ROOT / "hack/tools.sh"), "velero"], env=ENV, check=False)
        if result.returncode != 0 or not binary.exists():
            print(f"  velero build FAILED (hack/tools.sh velero exited {result.returncode})", flush=True)
            return None
    return binary.resolve().parent


def minio() -> dict[str, str]:
    values = dict(line.split("=", 1) for line in (ROOT / ".kubeplane/minio.env").read_text().split() if "=" in line)
    spec = json.loads(kubectl("get", "backupstoragelocations.backup.kubeplane.dev", "-n", KP_NS, "default",
                              "-o", "jsonpath={.spec}"))
    values.setdefault("MINIO_ENDPOINT", spec["config"]["s3Url"])
    return values


class Velero:
    """`velero server` as a local process against the cluster, with its CRDs, namespace and location."""

    def __init__(self, tools: Path) -> None:
        self.velero = tools / "velero"
        self.plugins = tools / "velero-plugins"
        self.log_path = ROOT / ".kubeplane/logs/velero-bench.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        result = subprocess.run([str(self.velero), *args, "--kubeconfig", ENV["KUBECONFIG"], "-n", VELERO_NS],
                                capture_output=True, text=True, env=ENV, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"velero {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self) -> None:
        crds = self.cli("install", "--crds-only", "--dry-run", "-o", "yaml")
        kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=crds)
        kubectl("wait", "--for=condition=Established", "--timeout=60s",
                "crd/backups.velero.io", "crd/restores.velero.io", "crd/backupstoragelocations.velero.io")
        apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": VELERO_NS}})
        m = minio()
        cloud = (f"[default]\naws_access_key_id={m['MINIO_ROOT_USER']}\n"
                 f"aws_secret_access_key={m['MINIO_ROOT_PASSWORD']}\n")
        apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cloud-credentials", "namespace": VELERO_NS},
               "type": "Opaque", "data": {"cloud": base64.b64encode(cloud.encode()).decode()}})
        apply({"apiVersion": VELERO_API, "kind": "BackupStorageLocation",
               "metadata": {"name": "default", "namespace": VELERO_NS},
               "spec": {"provider": "aws", "default": True,
                        "objectStorage": {"bucket": "kubeplane", "prefix": "velero-bench"},
                        "credential": {"name": "cloud-credentials", "key": "cloud"},
                        "config": {"region": "us-east-1", "s3ForcePathStyle": "true",
                                   "s3Url": m["MINIO_ENDPOINT"]}}})
        # Velero's built-in restore actions read their helper image from the Deployment `velero` in its
        # namespace (`deployments.apps "velero" not found` fails the restore): a stand-in, 0 replicas.
        apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "velero", "namespace": VELERO_NS},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"component": "velero"}},
                        "template": {"metadata": {"labels": {"component": "velero"}},
                                     "spec": {"containers": [{"name": "velero",
                                                              "image": "velero/velero:v1.17.2"}]}}}})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [str(self.velero), "server", "--kubeconfig", ENV["KUBECONFIG"], "--namespace", VELERO_NS,
               "--plugin-dir", str(self.plugins), "--uploader-type", "kopia",
               "--default-volumes-to-fs-backup=false",
               "--metrics-address", "127.0.0.1:18085", "--profiler-address", "127.0.0.1:16060",
               "--log-level", "info"]
        print(f"- velero: starting `{' '.join(cmd)}` (log {self.log_path.relative_to(ROOT)})", flush=True)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)

        def ready() -> tuple[bool, str]:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"velero server exited {self.proc.returncode}:\n" + "\n".join(tail))
            phase = phase_of("backupstoragelocations.velero.io", VELERO_NS, "default").get("phase", "")
            return phase == "Available", f"location {phase or 'unvalidated'}"

        wait_until(ready, timeout=120, label="velero server + location")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # velero and its plugin subprocesses
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            print("- velero: server stopped", flush=True)


def bench_velero(velero: Velero, run: str, namespaces: list[str], timeout: float, out: dict[str, Any]) -> None:
    """Fills `out` as each operation ends, so a restore that runs out of time keeps the backup's figures
    (and the restore's timeout as a lower bound: `restore_over`)."""
    name = f"bench-{run}"
    assert velero.proc is not None
    print(f"- velero: Backup {name} of {len(namespaces)} namespaces", flush=True)
    memory = PeakRss(velero.proc.pid)
    backup_s, backup = run_to_completion("velero backup", "backups.velero.io", {
        "apiVersion": VELERO_API, "kind": "Backup", "metadata": {"name": name, "namespace": VELERO_NS},
        "spec": {"includedNamespaces": namespaces, "storageLocation": "default", "ttl": "24h0m0s",
                 "snapshotVolumes": False, "defaultVolumesToFsBackup": False},
    }, timeout)
    out.update(backup=backup_s, backup_items=backup.get("progress", {}).get("itemsBackedUp"), name=name,
               backup_mib=memory.mib())
    print(f"- velero: Restore {name} into v-r-<i>", flush=True)
    memory = PeakRss(velero.proc.pid)
    try:
        restore_s, restore = run_to_completion("velero restore", "restores.velero.io", {
            "apiVersion": VELERO_API, "kind": "Restore", "metadata": {"name": name, "namespace": VELERO_NS},
            "spec": {"backupName": name, "restorePVs": False,
                     "namespaceMapping": {ns: ns.replace("bench-bk-", "v-r-") for ns in namespaces}},
        }, timeout)
    except TimeoutError:
        out.update(restore_over=timeout, restore_mib=memory.mib())
        raise
    out.update(restore=restore_s, restore_items=restore.get("progress", {}).get("itemsRestored"),
               restore_mib=memory.mib())


# --- main -----------------------------------------------------------------------------------------

def fmt_rate(items: Any, seconds: float) -> str:
    return f"{items / seconds:.0f}" if isinstance(items, int) and seconds > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="parallel kubectl processes for the data set")
    parser.add_argument("--timeout", type=float, help="seconds allowed per backup or restore (default: 1800, or "
                        "50 ms an object when more: Velero restored ~48 objects/s at 100,000)")
    parser.add_argument("--objects", type=int, help="total objects, in namespaces of --per-namespace objects (at most "
                        f"{MAX_NAMESPACES} namespaces: beyond, more objects per namespace)")
    parser.add_argument("--no-velero", action="store_true", help="kubeplane only (Velero column n/a)")
    args = parser.parse_args()
    require_cluster()
    n, m = args.namespaces, args.per_namespace
    if args.objects:
        # A Backup names at most 256 namespaces and a Restore maps at most 256 (the CRDs' bounds): beyond
        # that, more objects per namespace.
        n = max(1, min(MAX_NAMESPACES, args.objects // m))
        m = -(-args.objects // n)
    if n > MAX_NAMESPACES:
        parser.error(f"--namespaces {n}: a Backup names at most {MAX_NAMESPACES}; raise --per-namespace instead")
    timeout = args.timeout or max(1800.0, 0.05 * n * m)
    run = uuid.uuid4().hex[:6]
    prefixes = ("bench-bk-", "kp-r-", "v-r-")
    namespaces = [f"bench-bk-{i}" for i in range(n)]

    if leftovers := bench_namespaces(prefixes):
        print(f"- {len(leftovers)} namespaces left from an earlier run: deleting and waiting", flush=True)
        delete_namespaces(prefixes)
        wait_until(lambda: (not (left := bench_namespaces(prefixes)), f"{len(left)} left"),
                   timeout=900, label="old bench namespaces")

    velero: Velero | None = None
    raw_rate = 0.0
    kp: dict[str, Any] = {}
    ve: dict[str, Any] = {}
    velero_problem = ""
    try:
        print(f"- data set: {n} namespaces x {m} objects (ConfigMaps + Secrets) = {n * m}", flush=True)
        took = populate(namespaces, m, args.workers)
        print(f"  created in {took:.1f}s ({n * m / took:.0f} objects/s); {verify('bench-bk-', n, m)}", flush=True)

        kp = bench_kubeplane(run, namespaces, timeout)
        kp["verify"] = verify("kp-r-", n, m)
        print(f"  kubeplane restore check: {kp['verify']}", flush=True)
        raw_rate = raw_create_rate()
        print(f"- the API server's create throughput (bare client, 50 in flight): {raw_rate:.0f} objects/s",
              flush=True)

        if args.no_velero:
            velero_problem = "skipped (--no-velero)"
        else:
            tools = velero_dir()
            if tools is None:
                velero_problem = "build failed (hack/tools.sh velero)"
            else:
                try:
                    velero = Velero(tools)
                    velero.start()
                    bench_velero(velero, run, namespaces, timeout, ve)
                    ve["verify"] = verify("v-r-", n, m)
                    print(f"  velero restore check: {ve['verify']}", flush=True)
                except (RuntimeError, TimeoutError) as exc:
                    velero_problem = str(exc)
                    print(f"  velero FAILED: {exc}", flush=True)
                    if "restore_over" not in ve:  # a failure, not a restore out of time: nothing to compare
                        ve = {}
    finally:
        if velero is not None:
            try:
                name = f"bench-{run}"
                if phase_of("backups.velero.io", VELERO_NS, name):
                    velero.cli("backup", "delete", name, "--confirm")  # its files in the bucket too
                    wait_until(lambda: (not phase_of("backups.velero.io", VELERO_NS, name), "deleting"),
                               timeout=60, label="velero backup delete")
                kubectl("delete", "restores.velero.io", "-n", VELERO_NS, "--all", "--timeout=30s")
            except (RuntimeError, TimeoutError) as exc:
                print(f"  velero cleanup: {exc}", flush=True)
            velero.stop()
        if kp.get("name"):
            kubectl("delete", "restores.backup.kubeplane.dev,backups.backup.kubeplane.dev", "-n", KP_NS,
                    kp["name"], "--ignore-not-found", "--wait=false")
        print("- deleting the bench namespaces in the background", flush=True)
        delete_namespaces(prefixes, background=True)

    if not kp:
        return
    rows = [("operation", "kubeplane", "velero", "ratio velero/kubeplane")]
    for op, items_key in (("backup", "backup_items"), ("restore", "restore_items")):
        if op in ve:
            rows.append((f"{op} (s)", f"{kp[op]:.1f}", f"{ve[op]:.1f}", f"{ve[op] / kp[op]:.2f}x"))
        elif f"{op}_over" in ve:  # out of time: the timeout is a lower bound
            over = ve[f"{op}_over"]
            rows.append((f"{op} (s)", f"{kp[op]:.1f}", f"> {over:.0f}", f"> {over / kp[op]:.2f}x"))
        else:
            rows.append((f"{op} (s)", f"{kp[op]:.1f}", "n/a", "n/a"))
        rows.append((f"{op} items/s", fmt_rate(kp[items_key], kp[op]),
                     fmt_rate(ve[items_key], ve[op]) if op in ve else "n/a", ""))
        partial = ">= " if f"{op}_over" in ve else ""  # the peak until it ran out of time
        rows.append((f"{op} peak RSS (MiB)", f"{kp[op + '_mib']:.0f}",
                     f"{partial}{ve[op + '_mib']:.0f}" if ve else "n/a",
                     f"{partial}{ve[op + '_mib'] / kp[op + '_mib']:.2f}x" if ve else "n/a"))
    print_table(f"Backup + restore of {n} namespaces x {m} objects ({n * m} ConfigMaps/Secrets)", rows)
    print(f"\nkubeplane items: backed up {kp['backup_items']}, restored {kp['restore_items']}; check {kp['verify']}")
    if raw_rate and kp.get("restore_items"):
        share = kp["restore_items"] / kp["restore"] / raw_rate
        print(f"kubeplane restore: {share:.0%} of the API server's create throughput here ({raw_rate:.0f} objects/s "
              "by a bare client)")
    if ve:
        print(f"velero items:    backed up {ve['backup_items']}, restored {ve.get('restore_items', 'n/a')}; "
              f"check {ve.get('verify', velero_problem)}")
        for op in ("backup", "restore"):
            if op in ve:
                faster = kp[op] < ve[op]
                print(f"{op}: kubeplane {'faster' if faster else 'SLOWER'}, {ve[op] / kp[op]:.2f}x Velero's speed")
            elif f"{op}_over" in ve:
                print(f"{op}: kubeplane faster, over {ve[op + '_over'] / kp[op]:.2f}x Velero's speed (Velero "
                      f"not done after {ve[op + '_over']:.0f} s)")
    else:
        print(f"velero: n/a ({velero_problem})")


if __name__ == "__main__":
    main()
