"""PATCH bodies and server-side apply field ownership.

json-patch (RFC 6902), merge-patch (RFC 7386), strategic merge patch (the directives kubectl's
client-side apply sends: null, $patch, $setElementOrder, $deleteFromPrimitiveList, $retainKeys, with
per-kind merge keys) and server-side apply with managedFields in the FieldsV1 format.
"""

import copy
import datetime
import json


class PatchError(Exception):
    """code 400 = malformed patch, 422 = patch does not apply."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- json-patch

def _unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(422, f'JSON pointer must be empty or start with a "/": "{path}"')
    return [_unescape(t) for t in path[1:].split("/")]


def _parent(doc, tokens, path):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise PatchError(422, f"doc is missing path: \"{path}\": missing value")
    return cur


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(422, f"doc is missing path: \"{path}\": missing value")


def _remove(doc, path):
    tokens = _pointer(path)
    parent = _parent(doc, tokens, path)
    last = tokens[-1] if tokens else ""
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(422, f"doc is missing path: \"{path}\": missing value")


def _add(doc, path, value, replace=False):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(422, f"doc is missing key: \"{path}\": missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(422, f"add operation does not apply: doc is missing path: \"{path}\": "
                                  "missing value")
    else:
        raise PatchError(422, f"doc is missing path: \"{path}\": missing value")
    return doc


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(400, "Unexpected kind: <nil>")
        kind, path = op.get("op"), op.get("path", "")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(422, f"{kind} operation missing value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            value = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(422, f"testing value {path} failed: test failed")
        else:
            raise PatchError(400, f"Unexpected kind: {kind}")
    return doc


# ---------------------------------------------------------------- merge-patch

def merge_patch(doc, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---------------------------------------------------------------- strategic merge patch

_DELETE = object()
_COMMON_MERGE_KEYS = {("metadata", "ownerReferences"): "uid", ("metadata", "finalizers"): ""}


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge_patch(doc, patch, rtype):
    if not isinstance(patch, dict):
        raise PatchError(400, "json: cannot unmarshal array into Go value of type map[string]"
                              "interface {}")
    keys = dict(_COMMON_MERGE_KEYS)
    keys.update(rtype.smp_merge_keys)
    out = _smp_map(doc, patch, (), keys)
    return {} if out is _DELETE else out


def _smp_map(orig, patch, path, keys):
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip_directives(patch)
    if directive not in (None, "merge"):
        raise PatchError(400, f"Unknown patch type: {directive}")
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    retain = patch.pop("$retainKeys", None)
    if retain is not None:
        out = {k: v for k, v in out.items() if k in retain}
    orders, deletions = {}, {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            deletions[k.split("/", 1)[1]] = v
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp_map(out.get(k), v, path + (k,), keys)
            if merged is _DELETE:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _smp_list(out.get(k), v, path + (k,), keys)
        else:
            out[k] = v
    for field, values in deletions.items():
        if isinstance(out.get(field), list):
            out[field] = [x for x in out[field] if x not in values]
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = _apply_order(out[field], order, keys.get(path + (field,)))
    return out


def _smp_list(orig, patch, path, keys):
    orig = orig if isinstance(orig, list) else []
    if path not in keys:
        return _strip_directives(patch)
    key = keys[path]
    if key == "":  # merged list of primitives
        out = list(orig)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip_directives(p) for p in patch
                if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    out = copy.deepcopy(orig)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(422, f"map: {item} does not contain declared merge key: {key}")
        idx = next((i for i, o in enumerate(out)
                    if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(key) == item[key])]
        elif idx is None:
            out.append(_strip_directives(item))
        else:
            merged = _smp_map(out[idx], item, path, keys)
            if merged is _DELETE:
                out.pop(idx)
            else:
                out[idx] = merged
    return out


def _apply_order(items, order, key):
    def pos(item):
        for i, o in enumerate(order):
            if key and isinstance(o, dict) and isinstance(item, dict) and \
                    o.get(key) == item.get(key):
                return i
            if not key and o == item:
                return i
        return len(order)
    return sorted(items, key=pos)


# ---------------------------------------------------------------- server-side apply

SKIP_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
             "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}


def _key_of(item, keys):
    key = {}
    for k in keys:
        v = item.get(k)
        if v is None and k == "protocol":
            v = "TCP"  # the schema default SSA also uses for list-map keys
        key[k] = v
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _list_type(rtype, spath):
    if spath == ("metadata", "ownerReferences"):
        return ("map", ("uid",))
    if spath == ("metadata", "finalizers"):
        return ("set",)
    return rtype.ssa_list_types.get(spath, ("atomic",))


def field_set(obj, rtype):
    """Every owned leaf (and list-map item) of obj as a set of path tuples."""
    out = set()

    def walk(value, spath, path):
        for k, v in value.items():
            if not path and k in ("kind", "apiVersion"):
                continue
            if path == (("f", "metadata"),) and k in SKIP_META:
                continue
            p = path + (("f", k),)
            sp = spath + (k,)
            if isinstance(v, dict) and v:
                walk(v, sp, p)
            elif isinstance(v, dict):
                continue  # an empty struct owns nothing
            elif isinstance(v, list) and v:
                lt = _list_type(rtype, sp)
                if lt[0] == "map":
                    for item in v:
                        if isinstance(item, dict):
                            ip = p + (("k", _key_of(item, lt[1])),)
                            out.add(ip)
                            walk(item, sp, ip)
                elif lt[0] == "set":
                    for item in v:
                        out.add(p + (("v", json.dumps(item, sort_keys=True)),))
                else:
                    out.add(p)
            else:
                out.add(p)
    if isinstance(obj, dict):
        walk(obj, (), ())
    return out


def value_at(obj, path, rtype):
    cur, spath = obj, ()
    for kind, name in path:
        if kind == "f":
            if not isinstance(cur, dict) or name not in cur:
                return _DELETE
            cur = cur[name]
            spath += (name,)
        elif kind == "k":
            lt = _list_type(rtype, spath)
            cur = next((i for i in cur or [] if isinstance(i, dict) and
                        _key_of(i, lt[1]) == name), _DELETE)
            if cur is _DELETE:
                return cur
        else:
            return name if any(json.dumps(i, sort_keys=True) == name for i in cur or []) \
                else _DELETE
    return cur


def remove_at(obj, path, rtype):
    parent = value_at(obj, path[:-1], rtype) if len(path) > 1 else obj
    if parent is _DELETE:
        return
    kind, name = path[-1]
    spath = tuple(n for k, n in path if k == "f")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        lt = _list_type(rtype, spath)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and _key_of(i, lt[1]) == name)]
    elif kind == "v" and isinstance(parent, list):
        parent[:] = [i for i in parent if json.dumps(i, sort_keys=True) != name]


def apply_merge(live, applied, rtype, spath=()):
    out = copy.deepcopy(live) if isinstance(live, dict) else {}
    for k, v in applied.items():
        sp = spath + (k,)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = apply_merge(out[k], v, rtype, sp)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            lt = _list_type(rtype, sp)
            if lt[0] == "map":
                merged = copy.deepcopy(out[k])
                for item in v:
                    key = _key_of(item, lt[1])
                    idx = next((i for i, o in enumerate(merged)
                                if isinstance(o, dict) and _key_of(o, lt[1]) == key), None)
                    if idx is None:
                        merged.append(copy.deepcopy(item))
                    else:
                        merged[idx] = apply_merge(merged[idx], item, rtype, sp)
                out[k] = merged
            elif lt[0] == "set":
                out[k] = list(out[k]) + [x for x in v if x not in out[k]]
            else:
                out[k] = copy.deepcopy(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _enc(elem):
    kind, name = elem
    return f"{kind}:{name}"


def encode_fields(paths):
    root = {}
    for p in sorted(paths):
        node = root
        for e in p:
            node = node.setdefault(_enc(e), {})
    for p in paths:
        node = root
        for e in p:
            node = node[_enc(e)]
        if node and "." not in node:
            node["."] = {}
    return root


def decode_fields(tree, path=()):
    out = set()
    for key, sub in (tree or {}).items():
        if key == ".":
            out.add(path)
            continue
        kind, _, name = key.partition(":")
        p = path + ((kind, name),)
        if sub:
            out |= decode_fields(sub, p)
        else:
            out.add(p)
    return out


class Conflict(Exception):
    def __init__(self, conflicts):
        super().__init__("conflict")
        self.conflicts = conflicts  # [(manager, apiVersion, path)]


def path_string(path):
    """A field path the way SSA conflict messages print it: .spec.ports[port=80,protocol="TCP"]."""
    out = ""
    for kind, name in path:
        if kind == "f":
            out += "." + name
        elif kind == "k":
            key = json.loads(name)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" if isinstance(v, str) else f"{k}={v}"
                                  for k, v in key.items()) + "]"
        else:
            out += f"[={name}]"
    return out


class ManagedFields:
    """metadata.managedFields as a list of (manager, operation, subresource) -> owned paths."""

    def __init__(self, obj, rtype):
        self.rtype = rtype
        self.entries = []
        for e in (obj.get("metadata") or {}).get("managedFields") or []:
            if isinstance(e, dict) and e.get("fieldsType", "FieldsV1") == "FieldsV1":
                self.entries.append({"manager": e.get("manager", ""),
                                     "operation": e.get("operation", "Update"),
                                     "apiVersion": e.get("apiVersion", rtype.api_version),
                                     "time": e.get("time"),
                                     "subresource": e.get("subresource", ""),
                                     "fields": decode_fields(e.get("fieldsV1"))})

    def _entry(self, manager, operation, subresource):
        for e in self.entries:
            if (e["manager"], e["operation"], e["subresource"]) == (manager, operation,
                                                                     subresource):
                return e
        e = {"manager": manager, "operation": operation, "apiVersion": self.rtype.api_version,
             "time": None, "subresource": subresource, "fields": set()}
        self.entries.append(e)
        return e

    def record_update(self, manager, subresource, old, new):
        new_fields = field_set(new, self.rtype)
        if old is None:
            changed = new_fields
        else:
            old_fields = field_set(old, self.rtype)
            changed = {p for p in new_fields if p not in old_fields or
                       value_at(old, p, self.rtype) != value_at(new, p, self.rtype)}
        for e in self.entries:
            e["fields"] = (e["fields"] & new_fields) - changed
        if changed:
            e = self._entry(manager, "Update", subresource)
            e["fields"] |= changed
            e["time"] = _now()
        self._drop_empty()

    def apply(self, manager, subresource, live, applied, force):
        """The object after applying `applied` as `manager` onto live (None when absent)."""
        applied_fields = field_set(applied, self.rtype)
        mine = self._entry(manager, "Apply", subresource)
        if live is not None and not force:
            conflicts = []
            for e in self.entries:
                if e is mine:
                    continue
                for p in sorted(applied_fields & e["fields"]):
                    if p and p[-1][0] == "k":
                        continue
                    if value_at(live, p, self.rtype) != value_at(applied, p, self.rtype):
                        conflicts.append((e["manager"], e["apiVersion"], p))
            if conflicts:
                raise Conflict(conflicts)
        result = apply_merge(live or {}, applied, self.rtype)
        owned_by_others = set()
        for e in self.entries:
            if e is not mine:
                if force:
                    e["fields"] -= applied_fields
                owned_by_others |= e["fields"]
        # Shortest first: a list item goes whole before its fields are looked at.
        for p in sorted(mine["fields"] - applied_fields, key=len):
            if not any(q[:len(p)] == p for q in owned_by_others):
                remove_at(result, p, self.rtype)
        mine["fields"] = applied_fields
        mine["time"] = _now()
        self._drop_empty()
        return result

    def _drop_empty(self):
        self.entries = [e for e in self.entries if e["fields"]]

    def owners(self, path):
        return [e["manager"] for e in self.entries if path in e["fields"]]

    def has_apply_manager_owning(self, path):
        return any(e["operation"] == "Apply" and path in e["fields"] for e in self.entries)

    def to_json(self):
        out = []
        for e in self.entries:
            entry = {"manager": e["manager"], "operation": e["operation"],
                     "apiVersion": e["apiVersion"], "time": e["time"] or _now(),
                     "fieldsType": "FieldsV1", "fieldsV1": encode_fields(e["fields"])}
            if e["subresource"]:
                entry["subresource"] = e["subresource"]
            out.append(entry)
        return out


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
