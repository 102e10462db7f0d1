"""The mini-cluster's EndpointSlice controller: what kube-controller-manager's
endpointslice-controller does for Services with a selector, over the harness's pods.

Pods are not API objects here (the test API server serves Services, EndpointSlices and Nodes);
the harness owns them and hands the controller a snapshot. The controller writes through the
API server's registry in this process, so its slices go through the same validation,
resourceVersions and watch events as any client's.

Per Service with a selector (not ExternalName), per address family of spec.ipFamilies: the
matching pods with an address of that family, grouped by how the Service's ports resolve on
them (a named targetPort may be a different number per pod, or missing), one slice per group,
or one empty slice when nothing matches. Slices are named generateName "<service>-" and carry
the labels kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by, an owner
reference to the Service and the last-change-trigger-time annotation. Endpoint conditions
follow pkg/controller/endpointslice: ready = pod ready and not terminating (always true with
publishNotReadyAddresses), serving = pod ready, terminating = pod being deleted. Slices of a
Service that is gone are deleted (the garbage collector's job in a real cluster).
"""

import copy
import datetime
import threading

from apiserver import status as st
from apiserver.registry import Options
from apiserver.resources import BY_PLURAL

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ADDRESS_TYPE = {4: "IPv4", 6: "IPv6"}
FAMILY = {"IPv4": 4, "IPv6": 6}


class PodView:
    """What the controller needs of a pod."""

    __slots__ = ("name", "namespace", "uid", "labels", "ip", "node", "ports", "ready",
                 "terminating")

    def __init__(self, name, namespace, uid, labels, ip, node, ports, ready, terminating):
        self.name, self.namespace, self.uid = name, namespace, uid
        self.labels, self.ip, self.node, self.ports = dict(labels), dict(ip), node, dict(ports)
        self.ready, self.terminating = ready, terminating


def resolve_port(pod, target, protocol):
    """A Service port's targetPort on this pod: a number stays, a name is looked up among the
    pod's ports (name -> number, or (number, protocol) which must match). None: not there."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    spec = pod.ports.get(target)
    if spec is None:
        return None
    if isinstance(spec, (tuple, list)):
        number, proto = spec
        return number if proto.upper() == protocol else None
    return int(spec)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selected(pod, selector):
    return all(pod.labels.get(k) == v for k, v in selector.items())


class EndpointSliceController:
    """sync() reconciles every Service now (the harness calls it after each of its changes);
    start() also runs it whenever a Service changes through the API (kubectl, say)."""

    def __init__(self, api, pods, before_write=None):
        self.api = api                # TestApiServer
        self.pods = pods              # () -> [PodView]
        self.before_write = before_write  # called before each slice write
        self.lock = threading.RLock()
        self.errors = []              # the last failures, for reports
        self._stop = threading.Event()
        self._thread = None
        self._opts = Options(field_manager="endpointslice-controller")

    # -- the loop on Service changes

    def start(self):
        self._thread = threading.Thread(target=self._run, name="endpointslice-controller",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        store = self.api.store
        with store.cond:
            store.cond.notify_all()
        if self._thread:
            self._thread.join(5)

    def _services_mark(self):
        st_ = self.api.store.state("services")
        return (id(self.api.store), st_.history[-1].rv if st_.history else -1, st_.compacted_rv)

    def _run(self):
        seen = None
        while not self._stop.is_set():
            store = self.api.store
            with store.cond:
                store.cond.wait_for(lambda: self._stop.is_set() or
                                    self._services_mark() != seen, timeout=1.0)
                seen = self._services_mark()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception as e:  # kept for the report; the next change retries
                self.errors = (self.errors + [f"endpointslice sync: {e}"])[-10:]

    # -- reconciliation

    def sync(self):
        """Brings every selector Service's slices in line with the pods; returns the number of
        slices written."""
        with self.lock:
            store = self.api.store
            with store.cond:
                services = [copy.deepcopy(s) for s in store.state("services").objects.values()]
                slices = [copy.deepcopy(s) for s in
                          store.state("endpointslices").objects.values()]
            pods = self.pods()
            ours = {}
            for s in slices:
                labels = s["metadata"].get("labels") or {}
                if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(SERVICE_NAME_LABEL):
                    key = (s["metadata"]["namespace"], labels[SERVICE_NAME_LABEL])
                    ours.setdefault(key, []).append(s)
            writes = 0
            wanted = set()
            for svc in services:
                spec = svc.get("spec") or {}
                if not spec.get("selector") or spec.get("type") == "ExternalName":
                    continue
                key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
                wanted.add(key)
                writes += self._sync_service(svc, pods, ours.get(key, []))
            for key, stale in ours.items():
                if key not in wanted:
                    for s in stale:
                        writes += self._delete(s)
            return writes

    def desired(self, svc, pods):
        """[(address type, ports, endpoints)] for one Service: the slices it should have."""
        spec = svc["spec"]
        ns = svc["metadata"]["namespace"]
        publish = bool(spec.get("publishNotReadyAddresses"))
        out = []
        for address_type in spec.get("ipFamilies") or ["IPv4"]:
            family = FAMILY[address_type]
            groups = {}
            for pod in sorted(pods, key=lambda p: p.name):
                if pod.namespace != ns or not _selected(pod, spec["selector"]) or \
                        family not in pod.ip:
                    continue
                ports = []
                for p in spec.get("ports") or []:
                    proto = p.get("protocol", "TCP")
                    number = resolve_port(pod, p.get("targetPort", p.get("port")), proto)
                    if number is not None:
                        ports.append({"name": p.get("name", ""), "protocol": proto,
                                      "port": number})
                        if p.get("appProtocol"):
                            ports[-1]["appProtocol"] = p["appProtocol"]
                ready = (pod.ready and not pod.terminating) or publish
                endpoint = {"addresses": [pod.ip[family]],
                            "conditions": {"ready": ready, "serving": pod.ready,
                                           "terminating": pod.terminating},
                            "nodeName": pod.node,
                            "targetRef": {"kind": "Pod", "namespace": pod.namespace,
                                          "name": pod.name, "uid": pod.uid}}
                k = repr(ports)
                groups.setdefault(k, (ports, []))[1].append(endpoint)
            if not groups:
                out.append((address_type, [], []))
            for ports, endpoints in groups.values():
                out.append((address_type, ports, endpoints))
        return out

    def _sync_service(self, svc, pods, existing):
        meta = svc["metadata"]
        writes = 0
        by_type = {}
        for s in sorted(existing, key=lambda s: s["metadata"]["name"]):
            by_type.setdefault(s.get("addressType"), []).append(s)
        for address_type, ports, endpoints in self.desired(svc, pods):
            pool = by_type.get(address_type, [])
            current = pool.pop(0) if pool else None
            if current is not None and (current.get("endpoints") or []) == endpoints and \
                    (current.get("ports") or []) == ports:
                continue
            body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {
                        "namespace": meta["namespace"],
                        "labels": {SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
                        "annotations": {TRIGGER_TIME: _now()},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                             "name": meta["name"], "uid": meta.get("uid", ""),
                                             "controller": True,
                                             "blockOwnerDeletion": True}]},
                    "addressType": address_type, "endpoints": endpoints, "ports": ports}
            if current is None:
                body["metadata"]["generateName"] = meta["name"] + "-"
                self._write("create", body)
            else:
                body["metadata"]["name"] = current["metadata"]["name"]
                self._write("update", body)
            writes += 1
        for leftovers in by_type.values():
            for s in leftovers:
                writes += self._delete(s)
        return writes

    def _write(self, verb, body):
        rtype = BY_PLURAL["endpointslices"]
        reg = self.api.registry
        ns = body["metadata"]["namespace"]
        obj = reg.check_object(rtype, body, self._opts, [])
        if self.before_write:
            self.before_write()
        try:
            if verb == "create":
                reg.create(rtype, ns, obj, self._opts)
            else:
                reg.update(rtype, ns, obj["metadata"]["name"], obj, self._opts)
        except st.ApiError as e:
            raise RuntimeError(f"{verb} EndpointSlice {ns}/"
                               f"{body['metadata'].get('name') or body['metadata']['generateName']}"
                               f": {e}") from None

    def _delete(self, s):
        rtype = BY_PLURAL["endpointslices"]
        if self.before_write:
            self.before_write()
        try:
            self.api.registry.delete(rtype, s["metadata"]["namespace"], s["metadata"]["name"],
                                     {}, self._opts)
        except st.ApiError as e:
            if e.code != 404:
                raise RuntimeError(f"delete EndpointSlice {s['metadata']['name']}: {e}") from None
            return 0
        return 1
