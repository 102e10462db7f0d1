"""Sluice's test Kubernetes API server (test infrastructure, never shipped). See README.md."""

from .server import TestApiServer, main, read_manifests

__all__ = ["TestApiServer", "main", "read_manifests"]
