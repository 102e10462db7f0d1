#!/usr/bin/python3
"""The peer that api_list_bench.py compares sluice-kube-watch with: the official Python client
(Debian's python3-kubernetes) doing the same job, LIST into typed models (V1Service,
V1EndpointSlice) and, with `watch`, keep a store and watch from the list's resourceVersion.

    python_client_peer.py list  --kubeconfig K --resource services [--page-size 500]
    python_client_peer.py watch --kubeconfig K --resource endpointslices

Prints JSON lines like sluice-kube-watch's: first
{"event":"synced","count":N,"resourceVersion":RV,"listMs":..}, then (watch)
one {"event":TYPE,"key":"ns/name","resourceVersion":RV} per event. SIGTERM ends a watch.
"""

import argparse
import json
import sys
import time


def emit(line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def key_of(obj):
    md = obj.metadata
    return f"{md.namespace}/{md.name}" if md.namespace else md.name


def list_all(list_func, page_size):
    """Every item, following continue tokens when paginating; returns (items, resourceVersion)."""
    if page_size <= 0:
        result = list_func()
        return result.items, result.metadata.resource_version
    items, token = [], None
    while True:
        kwargs = {"limit": page_size}
        if token:
            kwargs["_continue"] = token
        page = list_func(**kwargs)
        items.extend(page.items)
        token = page.metadata._continue
        if not token:
            return items, page.metadata.resource_version


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("list", "watch"))
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--resource", choices=("services", "endpointslices", "nodes"),
                   default="services")
    p.add_argument("--page-size", type=int, default=0, help="0: one LIST request")
    args = p.parse_args()

    from kubernetes import client, config, watch

    config.load_kube_config(config_file=args.kubeconfig)
    list_func = {
        "services": lambda: client.CoreV1Api().list_service_for_all_namespaces,
        "endpointslices": lambda: client.DiscoveryV1Api().list_endpoint_slice_for_all_namespaces,
        "nodes": lambda: client.CoreV1Api().list_node,
    }[args.resource]()

    t0 = time.monotonic()
    items, rv = list_all(list_func, args.page_size)
    list_ms = (time.monotonic() - t0) * 1000
    # The store an informer would keep: the typed objects by key.
    store = {key_of(o): o for o in items}
    emit({"event": "synced", "count": len(store), "resourceVersion": rv,
          "listMs": round(list_ms, 1)})
    if args.command == "list":
        return 0

    w = watch.Watch()
    for ev in w.stream(list_func, resource_version=rv, timeout_seconds=3600):
        obj = ev["object"]
        key = key_of(obj)
        if ev["type"] == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        emit({"event": ev["type"], "key": key, "resourceVersion": obj.metadata.resource_version})
    return 0


if __name__ == "__main__":
    sys.exit(main())
