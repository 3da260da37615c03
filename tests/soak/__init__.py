"""`make soak`: the operators under random, seeded faults, with invariants counted from watches.

    .venv/bin/python -m tests.soak [--seconds 600] [--seed N]     # what `make soak` runs (SOAK_SECONDS, SOAK_SEED)

On the embedded cluster (`make up`'s operators are paused for the run), the three operators run as
processes behind the API relay (tests/faults/apirelay.py) while the soak scales ReplicaSets whose pods
the kubeplane scheduler places on the soak's own KWOK nodes, and backs up and restores a namespace of
ConfigMaps. Faults, drawn from the seed: SIGKILL of a random operator (restarted as a kubelet would),
API faults at the relay (500s, 429s with Retry-After, dropped connections, on pod creates, bindings,
status writes, Lease renewals, restore creates), and MinIO restarts. A fault counts only once it
landed (the process was alive, the relay rule matched a request, MinIO was serving).

Then the faults stop and everything must converge; the invariants (tests/soak/invariants.py) are
checked from the watches and the bucket, and the last line says
`soak: N faults, M operations, K violations` (exit status 1 on any violation).
"""
