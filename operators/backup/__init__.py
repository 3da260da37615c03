"""The backup operator: Velero-like backups of Kubernetes resources to S3-compatible storage."""
