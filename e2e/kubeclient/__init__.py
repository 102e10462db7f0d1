"""End-to-end tests of Sluice's Kubernetes client (controlplane/kube) against e2e/apiserver."""
