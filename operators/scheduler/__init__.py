"""The kubeplane scheduler's decision core: kube-scheduler's framework and default plugins as
pure functions over plain Kubernetes JSON (no Kopf, no I/O)."""
