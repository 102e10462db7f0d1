"""The three served kinds: schema (for strict decoding and pruning), defaulting, validation, tables.

Each kind is a ResourceType; the registry calls its hooks, the handler uses its names for routing
and discovery. Field schemas are written from the public v1 API types: a dict is a struct, MAP a
free string map, [x] a list of x, and the leaf markers say the JSON type a Go decoder would demand.
"""

import datetime
import ipaddress
import json
import re

# Leaf markers. A value of the wrong JSON type is a 400 like Go's json.Unmarshal type error.
STR, INT, BOOL, INT_OR_STR, TIME, ANY = "string", "int", "bool", "intstr", "time", "any"
MAP = "map"  # map[string]string (labels, selectors, capacity ...)

OWNER_REFERENCE = {"apiVersion": STR, "kind": STR, "name": STR, "uid": STR,
                   "controller": BOOL, "blockOwnerDeletion": BOOL}
MANAGED_FIELDS_ENTRY = {"manager": STR, "operation": STR, "apiVersion": STR, "time": TIME,
                        "fieldsType": STR, "fieldsV1": ANY, "subresource": STR}
OBJECT_META = {
    "name": STR, "generateName": STR, "namespace": STR, "selfLink": STR, "uid": STR,
    "resourceVersion": STR, "generation": INT, "creationTimestamp": TIME,
    "deletionTimestamp": TIME, "deletionGracePeriodSeconds": INT, "labels": MAP,
    "annotations": MAP, "ownerReferences": [OWNER_REFERENCE], "finalizers": [STR],
    "managedFields": [MANAGED_FIELDS_ENTRY],
}
CONDITION = {"type": STR, "status": STR, "observedGeneration": INT, "lastTransitionTime": TIME,
             "reason": STR, "message": STR}

SERVICE_SCHEMA = {
    "kind": STR, "apiVersion": STR, "metadata": OBJECT_META,
    "spec": {
        "ports": [{"name": STR, "protocol": STR, "appProtocol": STR, "port": INT,
                   "targetPort": INT_OR_STR, "nodePort": INT}],
        "selector": MAP, "clusterIP": STR, "clusterIPs": [STR], "type": STR,
        "externalIPs": [STR], "sessionAffinity": STR, "loadBalancerIP": STR,
        "loadBalancerSourceRanges": [STR], "externalName": STR, "externalTrafficPolicy": STR,
        "healthCheckNodePort": INT, "publishNotReadyAddresses": BOOL,
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": INT}},
        "ipFamilies": [STR], "ipFamilyPolicy": STR, "allocateLoadBalancerNodePorts": BOOL,
        "loadBalancerClass": STR, "internalTrafficPolicy": STR, "trafficDistribution": STR,
    },
    "status": {
        "loadBalancer": {"ingress": [{"ip": STR, "hostname": STR, "ipMode": STR,
                                      "ports": [{"port": INT, "protocol": STR, "error": STR}]}]},
        "conditions": [CONDITION],
    },
}

ENDPOINTSLICE_SCHEMA = {
    "kind": STR, "apiVersion": STR, "metadata": OBJECT_META, "addressType": STR,
    "endpoints": [{
        "addresses": [STR],
        "conditions": {"ready": BOOL, "serving": BOOL, "terminating": BOOL},
        "hostname": STR,
        "targetRef": {"kind": STR, "namespace": STR, "name": STR, "uid": STR, "apiVersion": STR,
                      "resourceVersion": STR, "fieldPath": STR},
        "deprecatedTopology": MAP, "nodeName": STR, "zone": STR,
        "hints": {"forZones": [{"name": STR}], "forNodes": [{"name": STR}]},
    }],
    "ports": [{"name": STR, "protocol": STR, "port": INT, "appProtocol": STR}],
}

NODE_CONFIG_SOURCE = {"configMap": {"namespace": STR, "name": STR, "uid": STR,
                                    "resourceVersion": STR, "kubeletConfigKey": STR}}
NODE_SCHEMA = {
    "kind": STR, "apiVersion": STR, "metadata": OBJECT_META,
    "spec": {"podCIDR": STR, "podCIDRs": [STR], "providerID": STR, "unschedulable": BOOL,
             "taints": [{"key": STR, "value": STR, "effect": STR, "timeAdded": TIME}],
             "configSource": NODE_CONFIG_SOURCE, "externalID": STR},
    "status": {
        "capacity": MAP, "allocatable": MAP, "phase": STR,
        "conditions": [{"type": STR, "status": STR, "lastHeartbeatTime": TIME,
                        "lastTransitionTime": TIME, "reason": STR, "message": STR}],
        "addresses": [{"type": STR, "address": STR}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": INT}},
        "nodeInfo": {"machineID": STR, "systemUUID": STR, "bootID": STR, "kernelVersion": STR,
                     "osImage": STR, "containerRuntimeVersion": STR, "kubeletVersion": STR,
                     "kubeProxyVersion": STR, "operatingSystem": STR, "architecture": STR,
                     "swap": {"capacity": INT}},
        "images": [{"names": [STR], "sizeBytes": INT}],
        "volumesInUse": [STR],
        "volumesAttached": [{"name": STR, "devicePath": STR}],
        "config": {"assigned": NODE_CONFIG_SOURCE, "active": NODE_CONFIG_SOURCE,
                   "lastKnownGood": NODE_CONFIG_SOURCE, "error": STR},
        "runtimeHandlers": [{"name": STR, "features": {"recursiveReadOnlyMounts": BOOL,
                                                        "userNamespaces": BOOL}}],
        "features": {"supplementalGroupsPolicy": BOOL},
    },
}

NODE_INFO_FIELDS = ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                    "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                    "operatingSystem", "architecture")


class FieldError(Exception):
    """One field.Error: becomes a cause of a 422 Invalid Status."""

    def __init__(self, kind, field, detail="", value=None, supported=None):
        super().__init__(detail)
        self.kind, self.field, self.detail = kind, field, detail
        self.value, self.supported = value, supported

    @property
    def reason(self):
        return {"required": "FieldValueRequired", "invalid": "FieldValueInvalid",
                "forbidden": "FieldValueForbidden", "unsupported": "FieldValueNotSupported",
                "duplicate": "FieldValueDuplicate"}[self.kind]

    def message(self):
        """The text after 'field: ' in a Status, as Go's field.Error.ErrorBody() writes it."""
        if self.kind == "required":
            body = "Required value"
        elif self.kind == "forbidden":
            body = "Forbidden"
        elif self.kind == "duplicate":
            body = "Duplicate value: " + go_value(self.value)
        elif self.kind == "unsupported":
            body = "Unsupported value: " + go_value(self.value)
            if self.supported:
                body += ": supported values: " + ", ".join(json.dumps(s) for s in self.supported)
        else:
            body = "Invalid value: " + go_value(self.value)
        if self.detail:
            body += ": " + self.detail
        return body


def go_value(v):
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[]string{" + ", ".join(json.dumps(str(x)) for x in v) + "}"
    if v is None:
        return "null"
    return str(v)


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s):
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_age(ts):
    """The AGE cell: the same rounding kubectl users read every day (2m30s, 5h, 3d4h ...)."""
    t = parse_rfc3339(ts)
    if t is None:
        return "<unknown>"
    secs = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_dns1035(value, field):
    if not value or len(value) > 63 or not DNS1035_LABEL.match(value):
        raise FieldError("invalid", field, "a DNS-1035 label must consist of lower case "
                         "alphanumeric characters or '-', start with an alphabetic character, and "
                         "end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex "
                         "used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')", value)


def check_subdomain(value, field):
    if not value or len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise FieldError("invalid", field, "a lowercase RFC 1123 subdomain must consist of lower "
                         "case alphanumeric characters, '-' or '.', and must start and end with an "
                         "alphanumeric character (e.g. 'example.com', regex used for validation is "
                         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                         value)


def qualified_name_ok(key):
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_NAME.match(name))


def validate_metadata(obj, errors):
    meta = obj.get("metadata") or {}
    for key, value in (meta.get("labels") or {}).items():
        if not qualified_name_ok(key):
            errors.append(FieldError("invalid", "metadata.labels", "name part must consist of "
                                     "alphanumeric characters, '-', '_' or '.', and must start and "
                                     "end with an alphanumeric character", key))
        elif not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errors.append(FieldError("invalid", "metadata.labels", "a valid label must be an empty "
                                     "string or consist of alphanumeric characters, '-', '_' or "
                                     "'.', and must start and end with an alphanumeric character",
                                     value))
    for key in (meta.get("annotations") or {}):
        if not qualified_name_ok(key):
            errors.append(FieldError("invalid", "metadata.annotations", "name part must consist "
                                     "of alphanumeric characters, '-', '_' or '.'", key))


class ResourceType:
    """One served resource: names for routing/discovery plus the hooks the registry calls."""

    kind = list_kind = plural = singular = group = version = ""
    namespaced = True
    short_names = ()
    categories = ()
    schema = {}
    has_status = False
    uses_generation = False        # metadata.generation maintained by the strategy
    return_deleted_object = False  # DELETE answers the object rather than a Status
    allow_create_on_update = False
    field_labels = ("metadata.name", "metadata.namespace")
    smp_merge_keys = {}     # strategic merge patch: path -> merge key ("" = merge primitives)
    ssa_list_types = {}     # server-side apply: path -> ("map", keys) | ("set",); else atomic
    columns = []

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gv_path(self):
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def group_resource(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def validate_name(self, name, errors):
        try:
            check_subdomain(name, "metadata.name")
        except FieldError as e:
            errors.append(e)

    # Hooks; obj is a plain dict already pruned to the schema.
    def zero_fields(self, obj):
        """Fields Go always serialises (non-pointer structs, non-omitempty slices)."""

    def default(self, obj, old, alloc):
        """Apply defaults and allocations; old is the stored object on update."""

    def validate(self, obj, old):
        return []

    def field_value(self, obj, label):
        meta = obj.get("metadata") or {}
        if label == "metadata.name":
            return meta.get("name", "")
        if label == "metadata.namespace":
            return meta.get("namespace", "")
        return None

    def bookmark_object(self, rv):
        obj = {"kind": self.kind, "apiVersion": self.api_version,
               "metadata": {"resourceVersion": str(rv), "creationTimestamp": None}}
        self.zero_fields(obj)
        return obj

    def table_row(self, obj):
        return []


def selector_string(sel):
    return ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items())) or "<none>"


class ServiceType(ResourceType):
    kind, list_kind, plural, singular = "Service", "ServiceList", "services", "service"
    group, version = "", "v1"
    short_names, categories = ("svc",), ("all",)
    schema = SERVICE_SCHEMA
    has_status = True
    return_deleted_object = True
    allow_create_on_update = True
    field_labels = ("metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type")
    smp_merge_keys = {("spec", "ports"): "port", ("status", "conditions"): "type"}
    ssa_list_types = {("spec", "ports"): ("map", ("port", "protocol")),
                      ("status", "conditions"): ("map", ("type",))}
    columns = [
        {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."},
        {"name": "Type", "type": "string", "format": "", "priority": 0,
         "description": "type determines how the Service is exposed."},
        {"name": "Cluster-IP", "type": "string", "format": "", "priority": 0,
         "description": "clusterIP is the IP address of the service."},
        {"name": "External-IP", "type": "string", "format": "", "priority": 0,
         "description": "externalIPs is a list of IP addresses for which nodes in the cluster "
                        "will also accept traffic for this service."},
        {"name": "Port(s)", "type": "string", "format": "", "priority": 0,
         "description": "The list of ports that are exposed by this service."},
        {"name": "Age", "type": "string", "format": "", "priority": 0,
         "description": "CreationTimestamp is a timestamp representing the server time when "
                        "this object was created."},
        {"name": "Selector", "type": "string", "format": "", "priority": 1,
         "description": "Route service traffic to pods with label keys and values matching "
                        "this selector."},
    ]

    def validate_name(self, name, errors):
        try:
            check_dns1035(name, "metadata.name")
        except FieldError as e:
            errors.append(e)

    def field_value(self, obj, label):
        spec = obj.get("spec") or {}
        if label == "spec.clusterIP":
            return spec.get("clusterIP", "")
        if label == "spec.type":
            return spec.get("type", "")
        return super().field_value(obj, label)

    def zero_fields(self, obj):
        obj.setdefault("spec", {})
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        status.setdefault("loadBalancer", {})

    def default(self, obj, old, alloc):
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        svc_type = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] == "ClientIP":
            cfg = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            cfg.setdefault("timeoutSeconds", 10800)
        else:
            spec.pop("sessionAffinityConfig", None)
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if p.get("targetPort") in (None, 0, ""):
                p["targetPort"] = p.get("port")
        if svc_type == "ExternalName":
            for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                      "internalTrafficPolicy"):
                spec.pop(f, None)
        else:
            # An update that omits allocated values keeps them (like the real service REST).
            if old_spec and not spec.get("clusterIP") and not spec.get("clusterIPs") \
                    and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
                spec["clusterIPs"] = list(old_spec.get("clusterIPs") or [old_spec["clusterIP"]])
                for f in ("ipFamilies", "ipFamilyPolicy"):
                    if f in old_spec and f not in spec:
                        spec[f] = old_spec[f]
            alloc.assign_cluster_ips(spec)
            spec.setdefault("internalTrafficPolicy", "Cluster")
        external = svc_type in ("NodePort", "LoadBalancer") or (
            svc_type == "ClusterIP" and spec.get("externalIPs"))
        if external:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        else:
            spec.pop("externalTrafficPolicy", None)
        if svc_type == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        wants_node_ports = svc_type == "NodePort" or (
            svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))
        for p in spec.get("ports") or []:
            if svc_type in ("ClusterIP", "ExternalName"):
                p.pop("nodePort", None)
            elif not p.get("nodePort"):
                kept = old_ports.get((p.get("port"), p.get("protocol")))
                if kept:
                    p["nodePort"] = kept
                elif wants_node_ports:
                    p["nodePort"] = alloc.node_port()
        if svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            if not spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = old_spec.get("healthCheckNodePort") \
                    or alloc.node_port()
        else:
            spec.pop("healthCheckNodePort", None)
        for ing in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ip"):
                ing.setdefault("ipMode", "VIP")

    def validate(self, obj, old):
        errors = []
        spec = obj.get("spec") or {}
        svc_type = spec.get("type")
        types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
        if svc_type not in types:
            errors.append(FieldError("unsupported", "spec.type", value=svc_type, supported=types))
        if spec.get("sessionAffinity") not in ("ClientIP", "None"):
            errors.append(FieldError("unsupported", "spec.sessionAffinity",
                                     value=spec.get("sessionAffinity"),
                                     supported=["ClientIP", "None"]))
        ports = spec.get("ports") or []
        headless = spec.get("clusterIP") == "None"
        if svc_type == "ExternalName":
            if not spec.get("externalName"):
                errors.append(FieldError("required", "spec.externalName"))
        elif not ports and not headless:
            errors.append(FieldError("required", "spec.ports"))
        seen = set()
        for i, p in enumerate(ports):
            base = f"spec.ports[{i}]"
            if len(ports) > 1 and not p.get("name"):
                errors.append(FieldError("required", base + ".name"))
            elif p.get("name") and not DNS1123_LABEL.match(p["name"]):
                errors.append(FieldError("invalid", base + ".name", "a lowercase RFC 1123 label "
                                         "must consist of lower case alphanumeric characters or "
                                         "'-'", p["name"]))
            port = p.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                errors.append(FieldError("invalid", base + ".port",
                                         "must be between 1 and 65535, inclusive", port))
            if p.get("protocol") not in ("SCTP", "TCP", "UDP"):
                errors.append(FieldError("unsupported", base + ".protocol", value=p.get("protocol"),
                                         supported=["SCTP", "TCP", "UDP"]))
            key = (port, p.get("protocol"))
            if key in seen:
                errors.append(FieldError("duplicate", base, value=f"{port}/{p.get('protocol')}"))
            seen.add(key)
            np = p.get("nodePort")
            if np and not 1 <= np <= 65535:
                errors.append(FieldError("invalid", base + ".nodePort",
                                         "must be between 1 and 65535, inclusive", np))
        for f in ("externalTrafficPolicy", "internalTrafficPolicy"):
            v = spec.get(f)
            if v is not None and v not in ("Cluster", "Local"):
                errors.append(FieldError("unsupported", "spec." + f, value=v,
                                         supported=["Cluster", "Local"]))
        for i, fam in enumerate(spec.get("ipFamilies") or []):
            if fam not in ("IPv4", "IPv6"):
                errors.append(FieldError("unsupported", f"spec.ipFamilies[{i}]", value=fam,
                                         supported=["IPv4", "IPv6"]))
        old_spec = (old or {}).get("spec") or {}
        if old_spec.get("clusterIPs") and svc_type != "ExternalName" and \
                old_spec.get("type") != "ExternalName":
            if (spec.get("clusterIPs") or [])[:1] != old_spec["clusterIPs"][:1]:
                errors.append(FieldError("invalid", "spec.clusterIPs[0]", "may not change once set",
                                         spec.get("clusterIPs")))
        return errors

    def table_row(self, obj):
        spec = obj.get("spec") or {}
        svc_type = spec.get("type", "ClusterIP")
        cluster_ip = spec.get("clusterIP") or "<none>"
        ext = list(spec.get("externalIPs") or [])
        if svc_type == "LoadBalancer":
            ing = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            lb = [i.get("ip") or i.get("hostname") for i in ing if i.get("ip") or i.get("hostname")]
            external = ",".join(lb + ext) or "<pending>"
        elif svc_type == "ExternalName":
            external = spec.get("externalName") or "<none>"
        else:
            external = ",".join(ext) or "<none>"
        ports = []
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                ports.append(f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}")
            else:
                ports.append(f"{p.get('port')}/{p.get('protocol', 'TCP')}")
        meta = obj.get("metadata") or {}
        return [meta.get("name", ""), svc_type, cluster_ip, external, ",".join(ports) or "<none>",
                human_age(meta.get("creationTimestamp")), selector_string(spec.get("selector"))]


class EndpointSliceType(ResourceType):
    kind, list_kind, plural, singular = "EndpointSlice", "EndpointSliceList", "endpointslices", \
        "endpointslice"
    group, version = "discovery.k8s.io", "v1"
    schema = ENDPOINTSLICE_SCHEMA
    uses_generation = True
    columns = [
        {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."},
        {"name": "AddressType", "type": "string", "format": "", "priority": 0,
         "description": "addressType specifies the type of address carried by this "
                        "EndpointSlice."},
        {"name": "Ports", "type": "string", "format": "", "priority": 0,
         "description": "ports specifies the list of network ports exposed by each endpoint."},
        {"name": "Endpoints", "type": "string", "format": "", "priority": 0,
         "description": "endpoints is a list of unique endpoints in this slice."},
        {"name": "Age", "type": "string", "format": "", "priority": 0,
         "description": "CreationTimestamp is a timestamp representing the server time when "
                        "this object was created."},
    ]

    def zero_fields(self, obj):
        obj.setdefault("addressType", "")
        obj.setdefault("endpoints", None)
        obj.setdefault("ports", None)

    def default(self, obj, old, alloc):
        for p in obj.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("name", "")

    def validate(self, obj, old):
        errors = []
        at = obj.get("addressType")
        if not at:
            errors.append(FieldError("required", "addressType"))
        elif at not in ("FQDN", "IPv4", "IPv6"):
            errors.append(FieldError("unsupported", "addressType", value=at,
                                     supported=["FQDN", "IPv4", "IPv6"]))
        if old is not None and old.get("addressType") != at:
            errors.append(FieldError("invalid", "addressType", "field is immutable", at))
        endpoints = obj.get("endpoints") or []
        if len(endpoints) > 1000:
            errors.append(FieldError("invalid", "endpoints", "must have at most 1000 items",
                                     len(endpoints)))
        for i, ep in enumerate(endpoints):
            addrs = ep.get("addresses") or []
            if not addrs:
                errors.append(FieldError("required", f"endpoints[{i}].addresses",
                                         "must contain at least 1 address"))
            elif len(addrs) > 100:
                errors.append(FieldError("invalid", f"endpoints[{i}].addresses",
                                         "must have at most 100 items", len(addrs)))
            for j, a in enumerate(addrs):
                if at in ("IPv4", "IPv6"):
                    try:
                        ip = ipaddress.ip_address(a)
                        ok = (ip.version == 4) == (at == "IPv4")
                    except ValueError:
                        ok = False
                    if not ok:
                        errors.append(FieldError("invalid", f"endpoints[{i}].addresses[{j}]",
                                                 f"must be a valid {at} address", a))
        for i, p in enumerate(obj.get("ports") or []):
            if p.get("protocol") not in ("SCTP", "TCP", "UDP"):
                errors.append(FieldError("unsupported", f"ports[{i}].protocol",
                                         value=p.get("protocol"), supported=["SCTP", "TCP", "UDP"]))
            port = p.get("port")
            if port is not None and not 0 <= port <= 65535:
                errors.append(FieldError("invalid", f"ports[{i}].port",
                                         "must be between 0 and 65535, inclusive", port))
        return errors

    def table_row(self, obj):
        ports = [str(p.get("port")) for p in obj.get("ports") or [] if p.get("port") is not None]
        addrs = [a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []]
        shown = ",".join(addrs[:3])
        if len(addrs) > 3:
            shown += f" + {len(addrs) - 3} more..."
        meta = obj.get("metadata") or {}
        return [meta.get("name", ""), obj.get("addressType", ""),
                ",".join(ports) or "<unset>",
                shown or "<unset>", human_age(meta.get("creationTimestamp"))]


class NodeType(ResourceType):
    kind, list_kind, plural, singular = "Node", "NodeList", "nodes", "node"
    group, version = "", "v1"
    namespaced = False
    short_names = ("no",)
    schema = NODE_SCHEMA
    has_status = True
    field_labels = ("metadata.name", "spec.unschedulable")
    smp_merge_keys = {("spec", "podCIDRs"): "", ("status", "conditions"): "type",
                      ("status", "addresses"): "type"}
    ssa_list_types = {("spec", "podCIDRs"): ("set",),
                      ("status", "conditions"): ("map", ("type",))}
    columns = [
        {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."},
        {"name": "Status", "type": "string", "format": "", "priority": 0,
         "description": "The status of the node"},
        {"name": "Roles", "type": "string", "format": "", "priority": 0,
         "description": "The roles of the node"},
        {"name": "Age", "type": "string", "format": "", "priority": 0,
         "description": "CreationTimestamp is a timestamp representing the server time when "
                        "this object was created."},
        {"name": "Version", "type": "string", "format": "", "priority": 0,
         "description": "Kubelet Version reported by the node."},
        {"name": "Internal-IP", "type": "string", "format": "", "priority": 1,
         "description": "List of addresses reachable to the node. Queried from cloud provider, "
                        "if available."},
        {"name": "External-IP", "type": "string", "format": "", "priority": 1,
         "description": "List of addresses reachable to the node. Queried from cloud provider, "
                        "if available."},
        {"name": "OS-Image", "type": "string", "format": "", "priority": 1,
         "description": "OS Image reported by the node from /etc/os-release (e.g. Debian "
                        "GNU/Linux 7 (wheezy))."},
        {"name": "Kernel-Version", "type": "string", "format": "", "priority": 1,
         "description": "Kernel Version reported by the node from 'uname -r' (e.g. "
                        "3.16.0-0.bpo.4-amd64)."},
        {"name": "Container-Runtime", "type": "string", "format": "", "priority": 1,
         "description": "ContainerRuntime Version reported by the node through runtime remote "
                        "API (e.g. containerd://1.4.2)."},
    ]

    def field_value(self, obj, label):
        if label == "spec.unschedulable":
            return "true" if (obj.get("spec") or {}).get("unschedulable") else "false"
        return super().field_value(obj, label)

    def zero_fields(self, obj):
        obj.setdefault("spec", {})
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        de = status.setdefault("daemonEndpoints", {})
        de.setdefault("kubeletEndpoint", {}).setdefault("Port", 0)
        info = status.setdefault("nodeInfo", {})
        for f in NODE_INFO_FIELDS:
            info.setdefault(f, "")

    def default(self, obj, old, alloc):
        spec = obj.setdefault("spec", {})
        if spec.get("podCIDRs") and not spec.get("podCIDR"):
            spec["podCIDR"] = spec["podCIDRs"][0]
        elif spec.get("podCIDR") and not spec.get("podCIDRs"):
            spec["podCIDRs"] = [spec["podCIDR"]]

    def validate(self, obj, old):
        errors = []
        spec = obj.get("spec") or {}
        for i, cidr in enumerate(spec.get("podCIDRs") or []):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                errors.append(FieldError("invalid", f"spec.podCIDRs[{i}]",
                                         "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                         "2001:db8::/64)", cidr))
        old_cidrs = ((old or {}).get("spec") or {}).get("podCIDRs")
        if old_cidrs and spec.get("podCIDRs") != old_cidrs:
            errors.append(FieldError("forbidden", "spec.podCIDRs",
                                     "node updates may not change podCIDR except from \"\" to "
                                     "valid"))
        for i, t in enumerate(spec.get("taints") or []):
            if t.get("effect") not in ("NoExecute", "NoSchedule", "PreferNoSchedule"):
                errors.append(FieldError("unsupported", f"spec.taints[{i}].effect",
                                         value=t.get("effect"),
                                         supported=["NoExecute", "NoSchedule",
                                                    "PreferNoSchedule"]))
        return errors

    def table_row(self, obj):
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        ready = "Unknown"
        for c in status.get("conditions") or []:
            if c.get("type") == "Ready":
                ready = "Ready" if c.get("status") == "True" else "NotReady"
        if (obj.get("spec") or {}).get("unschedulable"):
            ready += ",SchedulingDisabled"
        roles = sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {})
                       if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
        addrs = status.get("addresses") or []
        internal = next((a["address"] for a in addrs if a.get("type") == "InternalIP"), "")
        external = next((a["address"] for a in addrs if a.get("type") == "ExternalIP"), "")
        info = status.get("nodeInfo") or {}
        return [meta.get("name", ""), ready, ",".join(roles) or "<none>",
                human_age(meta.get("creationTimestamp")), info.get("kubeletVersion", ""),
                internal or "<none>", external or "<none>", info.get("osImage") or "<unknown>",
                info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]


RESOURCE_TYPES = [ServiceType(), EndpointSliceType(), NodeType()]
BY_PATH = {(r.gv_path, r.plural): r for r in RESOURCE_TYPES}
BY_PLURAL = {r.plural: r for r in RESOURCE_TYPES}
BY_KIND = {r.kind: r for r in RESOURCE_TYPES}
GROUP_VERSIONS = {}
for _r in RESOURCE_TYPES:
    GROUP_VERSIONS.setdefault((_r.group, _r.version), []).append(_r)


def resolve(name):
    """A plural, singular, short name or Kind (any case) to its ResourceType, else None."""
    low = name.lower()
    for r in RESOURCE_TYPES:
        if low in (r.plural, r.singular, r.kind.lower()) or low in r.short_names:
            return r
    return None


def prune(value, schema, path, unknown, type_errors):
    """A copy of value holding only fields the schema knows, like Go's decoder.

    Unknown fields go to `unknown` (dotted paths with [i] indexes, as strict decoding reports them);
    JSON type mismatches go to `type_errors` as (path, expected, got)."""
    if schema == ANY:
        return value
    if value is None:
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            type_errors.append((path, "object", value))
            return None
        out = {}
        for k, v in value.items():
            sub = schema.get(k)
            child = f"{path}.{k}" if path else k
            if sub is None:
                unknown.append(child)
                continue
            out[k] = prune(v, sub, child, unknown, type_errors)
        return out
    if isinstance(schema, list):
        if not isinstance(value, list):
            type_errors.append((path, "array", value))
            return None
        return [prune(v, schema[0], f"{path}[{i}]", unknown, type_errors)
                for i, v in enumerate(value)]
    if schema == MAP:
        if not isinstance(value, dict):
            type_errors.append((path, "map", value))
            return None
        for k, v in value.items():
            if not isinstance(v, str) and v is not None:
                type_errors.append((f"{path}.{k}", "string", v))
        return dict(value)
    ok = {STR: lambda v: isinstance(v, str), TIME: lambda v: isinstance(v, str),
          INT: lambda v: isinstance(v, int) and not isinstance(v, bool) or (
              isinstance(v, float) and v.is_integer()),
          BOOL: lambda v: isinstance(v, bool),
          INT_OR_STR: lambda v: isinstance(v, (int, str)) and not isinstance(v, bool)}[schema]
    if not ok(value):
        type_errors.append((path, schema, value))
        return None
    if schema == INT and isinstance(value, float):
        return int(value)
    return value
