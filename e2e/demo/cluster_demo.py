#!/usr/bin/python3
"""The demo: a 3-node mini-cluster in network namespaces, run by sluice-agent (nftables backend,
pod network on), pods created through the CNI conflist each agent wrote, and requests from a
pod and from outside spread over pods on different nodes through a ClusterIP and a NodePort.

Then it stays up so you can poke at it (kubectl against its API server, a shell in a pod), and
removes everything on Ctrl-C (or SIGTERM). `--no-wait` tears down at once (used by tests).
Needs root; nothing is done in the host namespace except a loopback listener for kubectl.
"""

import argparse
import collections
import os
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # e2e/

from cluster.minicluster import MiniCluster  # noqa: E402
from cluster import probes  # noqa: E402

REQUESTS = 12
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text=""):
    print(text, flush=True)


def spread(where, ip, port, pods_by_name):
    """REQUESTS GETs of /hostname; returns {pod name: count} and the failures' descriptions."""
    counts, failures = collections.Counter(), []
    for _ in range(REQUESTS):
        a = probes.http_get(where, ip, port, "/hostname")
        if a.ok and a.status == 200:
            counts[a.text] += 1
        else:
            failures.append(str(a))
    return counts, failures


def show(title, counts, failures, pods_by_name):
    say(f"  {title}")
    for name in sorted(counts):
        pod = pods_by_name.get(name)
        where = f"{pod.node.name}, {pod.ip[4]}" if pod else "?"
        say(f"    {name:8} ({where:22}) {'#' * counts[name]} {counts[name]}")
    for f in failures[:3]:
        say(f"    failed: {f}")
    nodes = {pods_by_name[n].node.name for n in counts if n in pods_by_name}
    say(f"    {DIM}{sum(counts.values())} of {REQUESTS} answered, by {len(counts)} pods on "
        f"{len(nodes)} nodes{RESET}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-wait", action="store_true", help="tear down right after the show")
    args = ap.parse_args()
    if os.geteuid() != 0:
        say("demo: run as root (it creates network namespaces)")
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    say(f"{BOLD}Starting a 3-node cluster in network namespaces (sluice-agent, nftables){RESET}")
    ok = True
    with MiniCluster(nodes=3, backend="nftables") as c:
        for n in c.nodes:
            say(f"  {n.name}: {n.ip[4]}, pod CIDR {n.pod_cidr[4]} "
                f"(conflist written by its agent: {n.conf_dir}/10-sluice.conflist)")

        say(f"\n{BOLD}Pods, created by running the agents' CNI conflists{RESET}")
        web = [c.add_pod(f"web-{i}", node, labels={"app": "web"})
               for i, node in enumerate(("node-1", "node-2", "node-3", "node-3"))]
        client = c.add_pod("client", "node-1", labels={"app": "client"})
        for p in web + [client]:
            say(f"  {p.name:8} on {p.node.name}: {p.ip[4]}, {p.ip[6]}")
        by_name = {p.name: p for p in web}

        svc = c.create_service({"metadata": {"name": "web"}, "spec": {
            "type": "NodePort", "selector": {"app": "web"},
            "ipFamilyPolicy": "PreferDualStack",
            "ports": [{"name": "http", "port": 80, "targetPort": 8083}]}})
        cluster_ip = svc["spec"]["clusterIP"]
        node_port = svc["spec"]["ports"][0]["nodePort"]
        say(f"\n{BOLD}Service default/web{RESET}: ClusterIP {cluster_ip}:80 and NodePort "
            f"{node_port} on every node, 4 endpoints on 3 nodes")
        c.wait_synced()

        say(f"\n{BOLD}{REQUESTS} requests each, GET /hostname{RESET}")
        counts, failures = spread(client, cluster_ip, 80, by_name)
        ok &= not failures
        show(f"from pod client (node-1) to ClusterIP {cluster_ip}:80", counts, failures, by_name)
        target = c.node("node-2")
        counts, failures = spread(c.outside, target.ip[4], node_port, by_name)
        ok &= not failures
        show(f"from outside ({c.outside.ip[4]}) to NodePort {target.ip[4]}:{node_port}",
             counts, failures, by_name)
        a = probes.http_get(client, web[1].ip[4], 8083, "/clientip")
        say(f"  pod to pod across nodes keeps the source: web-1 saw {probes.client_ip(a)} "
            f"(client is {client.ip[4]})")
        a = probes.http_get(client, c.outside.ip[4], 8083, "/clientip")
        say(f"  pod to outside is masqueraded: outside saw {probes.client_ip(a)} "
            f"(node-1 is {c.node('node-1').ip[4]})")

        if args.no_wait:
            return 0 if ok else 1

        kubeconfig = c.host_kubeconfig()
        example = os.path.join(os.path.dirname(kubeconfig), "echo-svc.yaml")
        with open(example, "w") as f:
            f.write("apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n"
                    "  selector: {app: web}\n  ports:\n  - {port: 8080, targetPort: 8083}\n")
        say(f"""
{BOLD}The cluster is up. Poke at it from another terminal (as root; kubectl if you have it):{RESET}
  export KUBECONFIG={kubeconfig}
  kubectl get svc,endpointslices,nodes -o wide
  kubectl create -f {example}     # a new Service; the agents program it
  kubectl get svc echo -o jsonpath='{{.spec.clusterIP}}'; echo
  ip netns exec {client.ns.name} curl -s http://<that ClusterIP>:8080/hostname
  kubectl get endpointslices -w      # watch; kubectl delete svc echo
  ip netns exec {client.ns.name} bash              # a shell in pod client's namespace
  ip netns exec {c.node('node-1').ns.name} nft list table inet sluice-proxy   # node-1's rules
  agent logs: {os.path.dirname(c.node('node-1').conf_dir)}/agent.log (and node-2, node-3)

Press Ctrl-C to stop; everything is removed.""")
        while not stop.wait(0.5):
            pass
        say("\nStopping: removing pods, agents, namespaces")
    say("Done: nothing left behind.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
