"""Static documents: /version, legacy and aggregated discovery, and the OpenAPI v3 documents kubectl
reads to decide on server-side field validation."""

import hashlib
import json

from .resources import GROUP_VERSIONS

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def version_info(version):
    major, minor, _ = (version.split(".") + ["0", "0"])[:3]
    return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": str(max(0, int(minor) - 1)),
            "gitVersion": f"v{version}", "gitCommit": "0" * 40, "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
            "platform": "linux/amd64"}


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _groups():
    return sorted({g for g, _ in GROUP_VERSIONS if g})


def api_group(group):
    versions = [{"groupVersion": f"{group}/{v}", "version": v}
                for g, v in sorted(GROUP_VERSIONS) if g == group]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
            "preferredVersion": versions[0]}


def api_group_list():
    groups = []
    for g in _groups():
        doc = api_group(g)
        del doc["kind"], doc["apiVersion"]
        groups.append(doc)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _storage_hash(rtype):
    return hashlib.sha256(f"{rtype.api_version}/{rtype.kind}".encode()).hexdigest()[:11]


def api_resource_list(group, version):
    resources = []
    for r in GROUP_VERSIONS.get((group, version), []):
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": VERBS, "storageVersionHash": _storage_hash(r)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        if r.has_status:
            resources.append({"name": f"{r.plural}/status", "singularName": "",
                              "namespaced": r.namespaced, "kind": r.kind, "verbs": STATUS_VERBS})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": sorted(resources, key=lambda e: e["name"])}


def aggregated(legacy_core, version_tag):
    """APIGroupDiscoveryList for /api (legacy_core) or /apis, version_tag v2 or v2beta1."""
    items = []
    groups = [""] if legacy_core else _groups()
    for g in groups:
        versions = []
        for (gg, v), rtypes in sorted(GROUP_VERSIONS.items()):
            if gg != g:
                continue
            resources = []
            for r in rtypes:
                entry = {"resource": r.plural,
                         "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                         "scope": "Namespaced" if r.namespaced else "Cluster",
                         "singularResource": r.singular, "verbs": VERBS}
                if r.short_names:
                    entry["shortNames"] = list(r.short_names)
                if r.categories:
                    entry["categories"] = list(r.categories)
                if r.has_status:
                    entry["subresources"] = [{"subresource": "status",
                                              "responseKind": dict(entry["responseKind"]),
                                              "verbs": STATUS_VERBS}]
                resources.append(entry)
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version_tag}",
            "metadata": {}, "items": items}


def _param(name, where="query"):
    return {"name": name, "in": where, "schema": {"type": "string", "uniqueItems": True}}


def openapi_v3_gv(group, version):
    """Paths with the operations and query parameters kubectl inspects (no schemas)."""
    paths = {}
    write = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]
    for r in GROUP_VERSIONS.get((group, version), []):
        gvk = {"group": group, "version": version, "kind": r.kind}

        def op(action, params=(), r=r, gvk=gvk):
            return {"tags": [f"{r.group or 'core'}_{r.version}"],
                    "operationId": f"{action}{r.kind}",
                    "parameters": list(params),
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk}
        base = r.gv_path + ("/namespaces/{namespace}/" if r.namespaced else "/") + r.plural
        list_params = [_param(p) for p in ("allowWatchBookmarks", "continue", "fieldSelector",
                                           "labelSelector", "limit", "resourceVersion",
                                           "resourceVersionMatch", "sendInitialEvents",
                                           "timeoutSeconds", "watch")]
        paths[base] = {"get": op("list", list_params), "post": op("post", write),
                       "delete": op("deletecollection")}
        paths[base + "/{name}"] = {
            "get": op("get"), "put": op("put", write),
            "patch": op("patch", write + [_param("force")]), "delete": op("delete")}
        if r.has_status:
            paths[base + "/{name}/status"] = {"get": op("get"), "put": op("put", write),
                                              "patch": op("patch", write + [_param("force")])}
        if r.namespaced:
            paths[f"{r.gv_path}/{r.plural}"] = {"get": op("list", list_params)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"},
            "paths": paths}


def _gv_key(group, version):
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_hash(group, version):
    doc = json.dumps(openapi_v3_gv(group, version), sort_keys=True).encode()
    return hashlib.sha512(doc).hexdigest().upper()


def openapi_v3_index():
    paths = {}
    for g, v in sorted(GROUP_VERSIONS):
        key = _gv_key(g, v)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={openapi_v3_hash(g, v)}"}
    return {"paths": paths}


def openapi_v3_lookup(rest):
    """'api/v1' or 'apis/discovery.k8s.io/v1' -> (group, version) or None."""
    for g, v in GROUP_VERSIONS:
        if _gv_key(g, v) == rest:
            return g, v
    return None

