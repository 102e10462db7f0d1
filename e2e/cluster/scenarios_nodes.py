"""The pod network follows the Node objects: a node's pod CIDR is routed while its Node exists
with an address to route it via, and no longer once the Node goes or points elsewhere (host-gw,
kept in step by every other node's agent)."""

import copy

from apiserver.registry import Options
from apiserver.resources import BY_PLURAL
from cluster import probes
from cluster.conformance import scenario
from cluster.minicluster import FAMILIES


def _pod_to_pod(t, client, server, ok):
    for f in FAMILIES:
        if ok:
            t.expect_reply(client, "HTTP", server.ip[f], 8083, [server])
        else:
            t.eventually(lambda: probes.tcp_connect(client, server.ip[f], 8083, timeout=1.0),
                         lambda a: not a.ok,
                         f"no connection: {server.node.name}'s pod CIDR is not routed any more")


@scenario("pod network follows Node objects: removed, re-added, moved", min_nodes=2,
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication (nodes joining and leaving)")
def routes_follow_nodes(t):
    far = t.cluster.nodes[-1]
    client = t.add_pod("client", 1)
    server = t.add_pod("web", far)
    _pod_to_pod(t, client, server, True)
    node_obj = copy.deepcopy(t.cluster.api.get("nodes", far.name))
    for k in ("resourceVersion", "uid", "creationTimestamp"):
        node_obj["metadata"].pop(k, None)
    restore = {"done": False}

    def put_back():
        if not restore["done"]:
            t.cluster.api.load(copy.deepcopy(node_obj))
            restore["done"] = True
    t.on_cleanup(put_back)

    # The Node goes: the other nodes drop their routes to its pods.
    t.cluster.api.registry.delete(BY_PLURAL["nodes"], "", far.name, {},
                                  Options(field_manager="e2e-cluster"))
    _pod_to_pod(t, client, server, False)
    # It comes back: routed again.
    put_back()
    _pod_to_pod(t, client, server, True)
    # Its InternalIPs move to addresses nobody has: the routes follow them (and break).
    moved = copy.deepcopy(node_obj)
    for a in moved["status"]["addresses"]:
        if a["type"] == "InternalIP":
            a["address"] = "192.168.77.99" if ":" not in a["address"] else "fd00:77::99"
    restore["done"] = False
    t.cluster.api.load(moved)
    _pod_to_pod(t, client, server, False)
    put_back()
    _pod_to_pod(t, client, server, True)
