"""kubeplane: the moving parts of the Kubernetes control plane as Kopf operators."""

__version__ = "0.1.0"
