module kubeplane.dev/tests/e2e/httpserver

go 1.26.0
