"""Object storage with one global resourceVersion counter, bounded per-resource event history
(the watch cache), compaction, and fan-out of events to open watches.

Everything is guarded by one condition variable (`Store.cond`); stored objects are never mutated
after commit, so events and snapshots can share them.
"""

import base64
import collections
import ipaddress
import json
import threading

from .resources import RESOURCE_TYPES, FieldError


class Expired(Exception):
    """The requested resourceVersion is older than the compaction point (HTTP 410)."""

    def __init__(self, rv, oldest):
        super().__init__(f"too old resource version: {rv} ({oldest})")
        self.rv, self.oldest = rv, oldest


class TooLarge(Exception):
    def __init__(self, rv, current):
        super().__init__(f"Too large resource version: {rv}, current: {current}")
        self.rv, self.current = rv, current


Event = collections.namedtuple("Event", "rv type obj prev")  # obj/prev are stored dicts


class ResourceState:
    def __init__(self, rtype, history_size):
        self.rtype = rtype
        self.objects = {}  # (namespace, name) -> object
        self.history = collections.deque(maxlen=history_size)
        self.compacted_rv = 0  # events with rv > compacted_rv are all in history


class Allocator:
    """Service ClusterIPs (one range per family, the first is primary) and node ports."""

    def __init__(self, service_cidrs, node_port_range=(30000, 32767)):
        self.nets = [ipaddress.ip_network(c) for c in service_cidrs]
        self.node_ports = node_port_range
        self.used_ips = set()
        self.used_ports = set()
        self._next_ip = {n: 10 for n in self.nets}
        self._next_port = node_port_range[0]

    def family(self, fam):
        want = 4 if fam == "IPv4" else 6
        return next((n for n in self.nets if n.version == want), None)

    def rebuild(self, services):
        self.used_ips.clear()
        self.used_ports.clear()
        for svc in services:
            spec = svc.get("spec") or {}
            for ip in spec.get("clusterIPs") or []:
                if ip != "None":
                    self.used_ips.add(ip)
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    self.used_ports.add(p["nodePort"])
            if spec.get("healthCheckNodePort"):
                self.used_ports.add(spec["healthCheckNodePort"])

    def _next_free_ip(self, net):
        size = net.num_addresses
        for _ in range(min(size, 1 << 20)):
            off = self._next_ip[net]
            self._next_ip[net] = off + 1 if off + 1 < size - 1 else 10
            ip = str(net.network_address + off)
            if ip not in self.used_ips:
                return ip
        raise FieldError("invalid", "spec.clusterIPs", "failed to allocate IP: range is full", [])

    def node_port(self):
        lo, hi = self.node_ports
        for _ in range(hi - lo + 1):
            p = self._next_port
            self._next_port = p + 1 if p < hi else lo
            if p not in self.used_ports:
                self.used_ports.add(p)
                return p
        raise FieldError("invalid", "spec.ports[0].nodePort", "range is full", 0)

    def assign_cluster_ips(self, spec):
        """clusterIP/clusterIPs/ipFamilies/ipFamilyPolicy defaulting and allocation.

        Raises FieldError for a requested IP outside the range (real: 422)."""
        ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
        if spec.get("clusterIP") and ips and ips[0] != spec["clusterIP"]:
            raise FieldError("invalid", "spec.clusterIPs", "must have the same value as "
                             "spec.clusterIP", ips)
        headless = ips[:1] == ["None"]
        policy = spec.get("ipFamilyPolicy")
        families = list(spec.get("ipFamilies") or [])
        if not policy:
            policy = "RequireDualStack" if headless and not spec.get("selector") and \
                len(self.nets) > 1 else "SingleStack"
        if headless:
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            if not families:
                families = ["IPv4" if n.version == 4 else "IPv6" for n in self.nets]
                if policy == "SingleStack":
                    families = families[:1]
            spec["ipFamilies"], spec["ipFamilyPolicy"] = families, policy
            return
        for ip in ips:
            try:
                families_ip = "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"
            except ValueError:
                raise FieldError("invalid", "spec.clusterIPs", "must be a valid IP address, "
                                 "(e.g. 10.9.8.7 or 2001:db8::ffff)", ips) from None
            if len(families) < len(ips):
                families.append(families_ip)
        if not families:
            families = ["IPv4" if self.nets[0].version == 4 else "IPv6"]
        if policy in ("PreferDualStack", "RequireDualStack") and len(families) == 1 \
                and len(self.nets) > 1:
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
        if policy == "RequireDualStack" and len(self.nets) < 2:
            raise FieldError("invalid", "spec.ipFamilyPolicy", "this cluster is not configured "
                             "for dual-stack services", policy)
        for i, fam in enumerate(families):
            net = self.family(fam)
            if net is None:
                raise FieldError("invalid", f"spec.ipFamilies[{i}]", "not configured on this "
                                 "cluster", fam)
            if i < len(ips):
                ip = ipaddress.ip_address(ips[i])
                if ip not in net:
                    raise FieldError("invalid", "spec.clusterIPs", f"failed to allocate IP "
                                     f"{ips[i]}: the provided IP ({ips[i]}) is not in the valid "
                                     f"range. The range of valid IPs is {net}", ips)
            else:
                ips.append(self._next_free_ip(net))
        spec["clusterIP"], spec["clusterIPs"] = ips[0], ips
        spec["ipFamilies"], spec["ipFamilyPolicy"] = families, policy


class Watcher:
    """One open watch: a queue the store fills, read by the request thread."""

    def __init__(self, rtype, namespace, label_sel, field_sel, min_rv):
        self.rtype, self.namespace = rtype, namespace
        self.label_sel, self.field_sel = label_sel, field_sel
        self.min_rv = min_rv          # events at or below this RV were already seen
        self.queue = collections.deque()  # ("event", Event) | ("control", dict)
        self.overflowed = False

    def in_scope(self, obj):
        return self.namespace is None or (obj.get("metadata") or {}).get("namespace") == \
            self.namespace

    def matches(self, obj):
        if obj is None or not self.in_scope(obj):
            return False
        return self.label_sel.matches((obj.get("metadata") or {}).get("labels")) and \
            self.field_sel.matches(obj)


def encode_continue(rv, start_key):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_key + "\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != "meta.k8s.io/v1" or not isinstance(data.get("rv"), int):
            raise ValueError("bad version")
        return data["rv"], data["start"].rstrip("\x00")
    except (ValueError, TypeError, AttributeError, KeyError):
        raise ValueError("continue key is not valid: incorrect encoded start resourceVersion "
                         "(version meta.k8s.io/v1)") from None


def object_key(obj):
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def key_string(key):
    ns, name = key
    return f"{ns}/{name}" if ns else name


class Store:
    MAX_WATCH_QUEUE = 100000

    def __init__(self, service_cidrs=("10.0.0.0/16", "2001:db8:fd00::/108"), history_size=1000,
                 initial_rv=1000):
        self.cond = threading.Condition(threading.RLock())
        self.rv = initial_rv
        self.history_size = history_size
        self.resources = {r.plural: ResourceState(r, history_size) for r in RESOURCE_TYPES}
        self.alloc = Allocator(service_cidrs)
        self.watchers = set()

    # -- reads (callers hold self.cond)
    def state(self, plural):
        return self.resources[plural]

    def get(self, plural, namespace, name):
        return self.resources[plural].objects.get((namespace or "", name))

    def snapshot_at(self, plural, rv):
        """Objects of one resource as they were at rv, rebuilt from the history."""
        st = self.resources[plural]
        if rv > self.rv:
            raise TooLarge(rv, self.rv)
        if rv < st.compacted_rv:
            raise Expired(rv, st.compacted_rv)
        objects = dict(st.objects)
        for ev in reversed(st.history):
            if ev.rv <= rv:
                break
            key = object_key(ev.obj)
            if ev.type == "ADDED":
                objects.pop(key, None)
            else:
                objects[key] = ev.prev
        return objects

    # -- writes (callers hold self.cond)
    def next_rv(self):
        self.rv += 1
        return self.rv

    def commit(self, plural, event_type, obj, prev):
        """Record one change and fan it out to open watches.

        obj carries the new resourceVersion (on DELETED: the last state stamped with the
        deletion RV); prev is the state before the change (None on ADDED)."""
        st = self.resources[plural]
        rv = int(obj["metadata"]["resourceVersion"])
        key = object_key(obj)
        if event_type == "DELETED":
            st.objects.pop(key, None)
        else:
            st.objects[key] = obj
        if len(st.history) == st.history.maxlen and st.history:
            st.compacted_rv = st.history[0].rv
        ev = Event(rv, event_type, obj, prev)
        st.history.append(ev)
        for w in list(self.watchers):
            if w.rtype.plural == plural:
                if len(w.queue) >= self.MAX_WATCH_QUEUE:
                    w.overflowed = True
                else:
                    w.queue.append(("event", ev))
        self.cond.notify_all()

    def compact(self, plural=None):
        """Drop history up to now: every RV handed out before this call answers 410 from now on.

        Compaction consumes one resourceVersion, so lists made afterwards carry an RV that is
        still watchable."""
        with self.cond:
            self.rv += 1
            for name, st in self.resources.items():
                if plural in (None, name):
                    st.history.clear()
                    st.compacted_rv = self.rv
            self.cond.notify_all()
            return self.rv

    def rebuild_allocations(self):
        self.alloc.rebuild(self.resources["services"].objects.values())

    # -- watches
    def register(self, watcher, start_rv):
        """Register under the lock: queue history after start_rv (None = no replay)."""
        st = self.resources[watcher.rtype.plural]
        if start_rv is not None:
            if start_rv < st.compacted_rv:
                raise Expired(start_rv, st.compacted_rv)
            for ev in st.history:
                if ev.rv > start_rv:
                    watcher.queue.append(("event", ev))
        self.watchers.add(watcher)

    def unregister(self, watcher):
        with self.cond:
            self.watchers.discard(watcher)

    def control(self, message, plural=None):
        """Queue a control message (drop, inject, bookmark) for open watches; returns count."""
        with self.cond:
            n = 0
            for w in self.watchers:
                if plural in (None, w.rtype.plural):
                    w.queue.append(("control", dict(message)))
                    n += 1
            self.cond.notify_all()
            return n

    # -- persistence for restarts across processes
    def dump(self):
        with self.cond:
            return {"resourceVersion": self.rv,
                    "objects": {p: list(st.objects.values())
                                for p, st in self.resources.items()}}
