"""`python -m tests.soak [--seconds S] [--seed N]`: see tests/soak/__init__.py."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys

from tests.integration.conftest import ENV, ROOT


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 600))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED") or random.randrange(2**31)))
    args = parser.parse_args()
    cluster = ROOT / "hack/cluster.sh"
    subprocess.run([str(cluster), "up"], check=True, env={**ENV, "OPERATORS": ""})
    os.environ["KUBECONFIG"] = ENV["KUBECONFIG"]
    paused = subprocess.run([str(cluster), "stop-operators"], env=ENV, check=True, capture_output=True,
                            text=True).stdout.split()
    try:
        from tests.soak.run import run
        report = run(args.seconds, args.seed, say=lambda line: print(line, flush=True))
    finally:
        if paused:
            subprocess.run([str(cluster), "start-operators"], env={**ENV, "OPERATORS": " ".join(paused)}, check=False)
    for fault, count in sorted(report.faults.items()):
        print(f"  fault {fault}: {count}")
    for operation, count in sorted(report.operations.items()):
        print(f"  operation {operation}: {count}")
    for note in report.notes:
        print(f"  {note}")
    for violation in report.violations:
        print(f"  VIOLATION {violation}")
    print(f"soak: seed {report.seed} (SOAK_SEED={report.seed} draws the same choices; "
          "where they land still depends on timing)")
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
