"""The mini-cluster (minicluster.py) and the conformance suite run on it (conformance.py,
scenarios_*.py). See README.md."""
