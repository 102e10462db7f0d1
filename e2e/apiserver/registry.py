"""The verbs: get, list, create, update, patch, apply, delete, with the generic registry's rules
(system fields, defaulting, validation, optimistic concurrency, status subresource, finalizers).

Every method takes the store lock, so a read-modify-write is atomic."""

import copy
import json
import random
import time
import uuid

import yaml

from . import status as st
from .patch import (Conflict, ManagedFields, PatchError, json_patch, merge_patch, path_string,
                    strategic_merge_patch)
from .resources import FieldError, now_rfc3339, prune, validate_metadata
from .store import (Expired, TooLarge, decode_continue, encode_continue, key_string, object_key)

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
GO_TYPES = {"string": "string", "int": "int32", "bool": "bool", "intstr": "intstr.IntOrString",
            "time": "v1.Time", "object": "struct", "array": "slice", "map": "map[string]string"}


def _json_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class _DupDetector:
    def __init__(self):
        self.dups = []

    def hook(self, pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                self.dups.append(k)
            seen[k] = v
        return seen


def field_manager_from_user_agent(ua):
    """The default manager name the real server derives: the User-Agent up to the first '/'."""
    name = (ua or "unknown").split("/", 1)[0].strip()
    return name[:128] or "unknown"


class Options:
    """Write options from the query string."""

    def __init__(self, field_manager="", dry_run=False, field_validation="", force=None,
                 user_agent=""):
        self.field_manager = field_manager
        self.dry_run = dry_run
        self.field_validation = field_validation or "Warn"
        self.force = force
        self.user_agent = user_agent

    @property
    def manager(self):
        return self.field_manager or field_manager_from_user_agent(self.user_agent)


class Registry:
    def __init__(self, store, config=None):
        self.store = store
        self.config = config  # future_rv_wait: how long a read waits for a future RV

    # ------------------------------------------------------------ decoding
    def decode(self, rtype, raw, content_type, opts, warnings, apply=False):
        """Request body -> pruned object dict, enforcing fieldValidation like the real decoder."""
        dup = _DupDetector()
        try:
            if apply or (content_type or "").startswith(("application/yaml", "application/x-yaml")):
                obj = yaml.safe_load(raw.decode("utf-8")) if raw else None
            else:
                obj = json.loads(raw.decode("utf-8"), object_pairs_hook=dup.hook)
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as e:
            raise st.bad_request(f"error decoding request body: {e}") from None
        return self.check_object(rtype, obj, opts, warnings, dup.dups, apply)

    def check_object(self, rtype, obj, opts, warnings, dups=(), apply=False):
        if not isinstance(obj, dict):
            raise st.bad_request(f"{rtype.kind} in version \"{rtype.version}\" cannot be handled "
                                 f"as a {rtype.kind}: json: cannot unmarshal {_json_type(obj)} "
                                 f"into Go value of type {rtype.group or 'core'}.{rtype.kind}")
        if apply:
            if not obj.get("apiVersion") or not obj.get("kind"):
                missing = "apiVersion" if not obj.get("apiVersion") else "kind"
                raise st.bad_request(f"error decoding patch: Object '{missing.capitalize()}' is "
                                     "missing in the apply configuration" if missing == "kind"
                                     else f"{missing} must be set in the apply configuration")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != rtype.api_version:
            raise st.bad_request(f"the API version in the data ({api_version}) does not match the "
                                 f"expected API version ({rtype.api_version})")
        if kind and kind != rtype.kind:
            raise st.bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                                 f"({rtype.kind})")
        obj = dict(obj)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        unknown, type_errors = [], []
        pruned = prune(obj, rtype.schema, "", unknown, type_errors)
        if type_errors:
            path, want, got = type_errors[0]
            raise st.bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                f"json: cannot unmarshal {_json_type(got)} into Go struct field "
                f".{path} of type {GO_TYPES.get(want, want)}")
        problems = [f'unknown field "{u}"' for u in unknown] + \
                   [f'duplicate field "{d}"' for d in dups]
        if problems:
            if opts.field_validation == "Strict":
                raise st.bad_request("strict decoding error: " + ", ".join(problems))
            if opts.field_validation == "Warn":
                warnings.extend(problems)
        meta = pruned.get("metadata")
        if meta is None or not isinstance(meta, dict):
            pruned["metadata"] = {}
        return pruned

    # ------------------------------------------------------------ reads
    def get(self, rtype, ns, name):
        with self.store.cond:
            obj = self.store.get(rtype.plural, ns, name)
            if obj is None:
                raise st.not_found(rtype, name)
            return obj

    def list(self, rtype, ns, label_sel, field_sel, rv, rv_match, limit, cont):
        """Returns (items, list_rv, continue_token, remaining_count)."""
        errors = []
        if rv_match not in ("", "Exact", "NotOlderThan"):
            errors.append(FieldError("unsupported", "resourceVersionMatch", value=rv_match,
                                     supported=["Exact", "NotOlderThan", ""]))
        elif rv_match and cont:
            errors.append(FieldError("forbidden", "resourceVersionMatch",
                                     "resourceVersionMatch is forbidden when continue is "
                                     "provided"))
        elif rv_match and rv == "":
            errors.append(FieldError("forbidden", "resourceVersionMatch",
                                     "resourceVersionMatch is forbidden unless resourceVersion "
                                     "is provided"))
        elif rv_match == "Exact" and rv == "0":
            errors.append(FieldError("forbidden", "resourceVersionMatch",
                                     'resourceVersionMatch "exact" is forbidden for '
                                     'resourceVersion "0"'))
        if errors:
            raise st.list_options_invalid(errors)
        if cont and rv not in ("", "0"):
            raise st.bad_request("specifying resource version is not allowed when using "
                                 "continue")
        wanted = None
        if rv not in ("", "0"):
            try:
                wanted = int(rv)
                if wanted < 0:
                    raise ValueError
            except ValueError:
                raise st.bad_request(f'invalid resource version "{rv}"') from None
        start_key = ""
        if cont:
            try:
                snap_rv, start_key = decode_continue(cont)
            except ValueError as e:
                raise st.bad_request(str(e)) from None
            mode = ("exact", snap_rv)
        elif wanted is None:
            mode = ("latest", None)
        elif rv_match == "Exact" or (rv_match == "" and limit > 0):
            mode = ("exact", wanted)
        else:
            mode = ("notolder", wanted)
        deadline = time.monotonic() + getattr(self.config, "future_rv_wait", 3.0)
        with self.store.cond:
            if mode[0] in ("notolder", "exact") and mode[1] > self.store.rv:
                # A watch cache waits a little for a future RV before giving up.
                while mode[1] > self.store.rv and time.monotonic() < deadline:
                    self.store.cond.wait(deadline - time.monotonic())
                if mode[1] > self.store.rv:
                    raise st.too_large_rv(mode[1], self.store.rv)
            state = self.store.state(rtype.plural)
            if mode[0] == "exact":
                try:
                    objects = self.store.snapshot_at(rtype.plural, mode[1])
                except Expired as e:
                    if cont:
                        token = encode_continue(self.store.rv, start_key)
                        raise st.expired(
                            "The provided continue parameter is too old to display a consistent "
                            "list result. You can start a new list without the continue "
                            "parameter, or use the continue token in this response to retrieve "
                            "the remainder of the results. Continuing with the provided token "
                            "results in an inconsistent list - objects that were created, "
                            "modified, or deleted between the time the first chunk was returned "
                            "and now may show up in the list.", token) from None
                    raise st.expired(str(e)) from None
                except TooLarge as e:
                    raise st.too_large_rv(e.rv, e.current) from None
                list_rv = mode[1]
            else:
                objects = dict(state.objects)
                list_rv = self.store.rv
        keys = sorted((key_string(k), k) for k in objects)
        items = []
        for ks, k in keys:
            if ns and k[0] != ns:
                continue
            if start_key and ks <= start_key:
                continue
            obj = objects[k]
            if not label_sel.matches((obj.get("metadata") or {}).get("labels")):
                continue
            if not field_sel.matches(obj):
                continue
            items.append((ks, obj))
        token, remaining = "", None
        if limit > 0 and len(items) > limit:
            token = encode_continue(list_rv, items[limit - 1][0])
            if label_sel.empty and field_sel.empty:
                remaining = len(items) - limit
            items = items[:limit]
        return [o for _, o in items], list_rv, token, remaining

    # ------------------------------------------------------------ writes
    def _namespace(self, rtype, obj, ns):
        meta = obj["metadata"]
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise st.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    def _prepare_services(self, rtype, obj, old):
        """Allocator bookkeeping for Services: everything but this object is in use."""
        if rtype.plural != "services":
            return
        key = object_key(obj)
        others = [o for k, o in self.store.state("services").objects.items() if k != key]
        self.store.alloc.rebuild(others)
        spec = obj.get("spec") or {}
        old_spec = (old or {}).get("spec") or {}
        old_ips = set(old_spec.get("clusterIPs") or [])
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            if ip not in ("None", "") and ip not in old_ips and ip in self.store.alloc.used_ips:
                raise st.invalid(rtype.kind, rtype.group, obj["metadata"].get("name", ""),
                                 [FieldError("invalid", "spec.clusterIPs",
                                             f"failed to allocate IP {ip}: provided IP is "
                                             "already allocated", spec.get("clusterIPs") or [ip])])
        for i, p in enumerate(spec.get("ports") or []):
            np_ = p.get("nodePort")
            if np_ and np_ in self.store.alloc.used_ports:
                raise st.invalid(rtype.kind, rtype.group, obj["metadata"].get("name", ""),
                                 [FieldError("invalid", f"spec.ports[{i}].nodePort",
                                             "provided port is already allocated", np_)])
            if np_:
                self.store.alloc.used_ports.add(np_)

    def _default_and_validate(self, rtype, obj, old):
        name = obj["metadata"].get("name", "")
        try:
            self._prepare_services(rtype, obj, old)
            rtype.default(obj, old, self.store.alloc)
        except FieldError as e:
            raise st.invalid(rtype.kind, rtype.group, name, [e]) from None
        rtype.zero_fields(obj)
        errors = []
        if old is None:
            rtype.validate_name(name, errors)
        validate_metadata(obj, errors)
        errors += rtype.validate(obj, old)
        if errors:
            raise st.invalid(rtype.kind, rtype.group, name, errors)

    def create(self, rtype, ns, obj, opts, managed=None, keep_status=False):
        """obj: a decoded, pruned object. Returns the stored object."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        self._namespace(rtype, obj, ns)
        rv = meta.get("resourceVersion", "")
        if rv and rv.isdigit() and int(rv) > 0:
            raise st.ApiError(st.status(500, "resourceVersion should not be set on objects to be "
                                             "created", reason=""))
        with self.store.cond:
            if not meta.get("name") and meta.get("generateName"):
                for _ in range(100):
                    meta["name"] = meta["generateName"] + "".join(
                        random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                    if self.store.get(rtype.plural, ns, meta["name"]) is None:
                        break
            if not meta.get("name"):
                raise st.invalid(rtype.kind, rtype.group, "", [FieldError(
                    "required", "metadata.name", "name or generateName is required")])
            if self.store.get(rtype.plural, ns, meta["name"]) is not None:
                raise st.already_exists(rtype, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                      "resourceVersion"):
                meta.pop(f, None)
            if rtype.uses_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rtype.plural == "services" and not keep_status:
                obj["status"] = {}
            self._default_and_validate(rtype, obj, None)
            mf = managed or ManagedFields({}, rtype)
            if managed is None:
                meta.pop("managedFields", None)
                mf.record_update(opts.manager, "", None, obj)
            meta["managedFields"] = mf.to_json()
            if opts.dry_run:
                meta["resourceVersion"] = ""
                return obj
            meta["resourceVersion"] = str(self.store.next_rv())
            self.store.commit(rtype.plural, "ADDED", obj, None)
            return obj

    def update(self, rtype, ns, name, obj, opts, subresource="", managed=None):
        """PUT semantics. Returns (object, created)."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise st.bad_request(f"the name of the object ({meta.get('name', '')}) does not match "
                                 f"the name on the URL ({name})")
        self._namespace(rtype, obj, ns)
        with self.store.cond:
            old = self.store.get(rtype.plural, ns, name)
            if old is None:
                if rtype.allow_create_on_update and not subresource and \
                        not meta.get("resourceVersion"):
                    return self.create(rtype, ns, obj, opts, managed), True
                raise st.not_found(rtype, name)
            want_rv = meta.get("resourceVersion", "")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise st.stale_update(rtype, name)
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
                raise st.conflict(rtype, name, f"Precondition failed: UID in precondition: "
                                               f"{meta['uid']}, UID in object meta: "
                                               f"{old['metadata']['uid']}")
            old_meta = old["metadata"]
            if subresource == "status":
                new = copy.deepcopy(old)
                new["status"] = copy.deepcopy(obj.get("status") or {})
                if "managedFields" in meta:
                    new["metadata"]["managedFields"] = meta["managedFields"]
            else:
                new = obj
                for f in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
                    if f in old_meta:
                        new["metadata"][f] = old_meta[f]
                    else:
                        new["metadata"].pop(f, None)
                if "managedFields" not in new["metadata"] and "managedFields" in old_meta:
                    new["metadata"]["managedFields"] = old_meta["managedFields"]
                if rtype.has_status:
                    new["status"] = copy.deepcopy(old.get("status") or {})
                if old_meta.get("deletionTimestamp") and \
                        len(new["metadata"].get("finalizers") or []) > \
                        len(old_meta.get("finalizers") or []):
                    raise st.invalid(rtype.kind, rtype.group, name, [FieldError(
                        "forbidden", "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted")])
            new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
            self._default_and_validate(rtype, new, old)
            if rtype.uses_generation and _without_meta(new) != _without_meta(old):
                new["metadata"]["generation"] = old_meta.get("generation", 1) + 1
            mf = managed or ManagedFields(new, rtype)
            if managed is None:
                mf.record_update(opts.manager, subresource, old, new)
            new["metadata"]["managedFields"] = mf.to_json()
            if not new["metadata"]["managedFields"]:
                new["metadata"].pop("managedFields")
            if _same(new, old):
                return old, False
            if opts.dry_run:
                return new, False
            if new["metadata"].get("deletionTimestamp") and \
                    not new["metadata"].get("finalizers"):
                return self._finish_delete(rtype, old, new), False
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.commit(rtype.plural, "MODIFIED", new, old)
            return new, False

    def patch(self, rtype, ns, name, raw, content_type, opts, subresource=""):
        """Returns (object, created, warnings)."""
        warnings = []
        ctype = (content_type or "").split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            raise st.ApiError(st.status(415, f"the body of the request was in an unknown format - "
                                             f"accepted media types include: "
                                             f"{', '.join(PATCH_TYPES)}", "UnsupportedMediaType"))
        if opts.force is not None and ctype != "application/apply-patch+yaml":
            raise st.invalid("PatchOptions", "meta.k8s.io", "", [FieldError(
                "forbidden", "force", "may not be specified for non-apply patch")])
        if ctype == "application/apply-patch+yaml":
            return self.apply(rtype, ns, name, raw, opts, subresource, warnings)
        try:
            patch = json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError) as e:
            raise st.bad_request(f"error decoding patch: {e}") from None
        with self.store.cond:
            old = self.store.get(rtype.plural, ns, name)
            if old is None:
                raise st.not_found(rtype, name)
            try:
                if ctype == "application/json-patch+json":
                    patched = json_patch(old, patch)
                elif ctype == "application/merge-patch+json":
                    if not isinstance(patch, dict):
                        raise PatchError(400, "json: cannot unmarshal array into Go value of "
                                              "type map[string]interface {}")
                    patched = merge_patch(old, patch)
                else:
                    patched = strategic_merge_patch(old, patch, rtype)
            except PatchError as e:
                if e.code == 400:
                    raise st.bad_request(str(e)) from None
                raise st.ApiError(st.status(422, str(e), "Invalid")) from None
            patched = self.check_object(rtype, patched, opts, warnings)
            if patched["metadata"].get("name") is None:
                patched["metadata"]["name"] = name
            obj, created = self.update(rtype, ns, name, patched, opts, subresource)
            return obj, created, warnings

    def apply(self, rtype, ns, name, raw, opts, subresource, warnings):
        if not opts.field_manager:
            raise st.invalid("PatchOptions", "meta.k8s.io", "", [FieldError(
                "required", "fieldManager", "is required for apply patch")])
        applied = self.decode(rtype, raw, "application/apply-patch+yaml", opts, warnings,
                              apply=True)
        meta = applied["metadata"]
        if meta.get("name", name) != name:
            raise st.bad_request(f"the name of the object ({meta.get('name')}) does not match the "
                                 f"name on the URL ({name})")
        meta["name"] = name
        self._namespace(rtype, applied, ns)
        for f in ("managedFields", "uid", "creationTimestamp", "generation"):
            meta.pop(f, None)
        want_rv = meta.pop("resourceVersion", "")
        with self.store.cond:
            old = self.store.get(rtype.plural, ns, name)
            if old is not None and want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise st.stale_update(rtype, name)
            mf = ManagedFields(old or {}, rtype)
            applied_for_merge = applied
            if old is not None and subresource != "status" and rtype.has_status:
                applied_for_merge = {k: v for k, v in applied.items() if k != "status"}
            elif subresource == "status":
                applied_for_merge = {k: v for k, v in applied.items()
                                     if k in ("apiVersion", "kind", "metadata", "status")}
            try:
                merged = mf.apply(opts.field_manager, subresource, old, applied_for_merge,
                                  bool(opts.force))
            except Conflict as c:
                raise _apply_conflict(rtype, name, c) from None
            merged["apiVersion"], merged["kind"] = rtype.api_version, rtype.kind
            if old is None:
                if subresource:
                    raise st.not_found(rtype, name)
                merged["metadata"].pop("resourceVersion", None)
                return self.create(rtype, ns, merged, opts, managed=mf), True, warnings
            merged["metadata"]["name"] = name
            obj, created = self.update(rtype, ns, name, merged, opts, subresource, managed=mf)
            return obj, created, warnings

    def delete(self, rtype, ns, name, options, opts):
        """Returns (http_code, body)."""
        options = options or {}
        pre = options.get("preconditions") or {}
        with self.store.cond:
            old = self.store.get(rtype.plural, ns, name)
            if old is None:
                raise st.not_found(rtype, name)
            meta = old["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise st.conflict(rtype, name, f"Precondition failed: UID in precondition: "
                                               f"{pre['uid']}, UID in object meta: {meta['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise st.conflict(rtype, name, "Precondition failed: ResourceVersion in "
                                               f"precondition: {pre['resourceVersion']}, "
                                               "ResourceVersion in object meta: "
                                               f"{meta['resourceVersion']}")
            if opts.dry_run:
                return 200, self._delete_answer(rtype, old)
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return 202, old
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = str(self.store.next_rv())
                self.store.commit(rtype.plural, "MODIFIED", new, old)
                return 202, new
            deleted = self._finish_delete(rtype, old, None)
            return 200, self._delete_answer(rtype, deleted)

    def _finish_delete(self, rtype, old, last):
        deleted = copy.deepcopy(last or old)
        deleted["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.commit(rtype.plural, "DELETED", deleted, old)
        return deleted

    @staticmethod
    def _delete_answer(rtype, obj):
        if rtype.return_deleted_object:
            return obj
        meta = obj["metadata"]
        details = {"name": meta["name"]}
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
        details["uid"] = meta.get("uid", "")
        return st.status(200, "", details=details)

    def delete_collection(self, rtype, ns, label_sel, field_sel, opts):
        with self.store.cond:
            items, _, _, _ = self.list(rtype, ns, label_sel, field_sel, "", "", 0, "")
            for obj in items:
                meta = obj["metadata"]
                self.delete(rtype, meta.get("namespace", ""), meta["name"], {}, opts)
            return {"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)}, "items": items}

    # ------------------------------------------------------------ admin
    def load(self, obj):
        """Upsert obj as an administrator: no validation, uid/creationTimestamp kept if given,
        status kept, a fresh resourceVersion. Returns the stored object."""
        from .resources import BY_KIND
        rtype = BY_KIND.get(obj.get("kind"))
        if rtype is None:
            raise ValueError(f"cannot load kind {obj.get('kind')!r}")
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = rtype.api_version
        meta = obj.setdefault("metadata", {})
        if rtype.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        if rtype.uses_generation:
            meta.setdefault("generation", 1)
        with self.store.cond:
            old = self.store.get(rtype.plural, meta.get("namespace", ""), meta["name"])
            try:
                self._prepare_services(rtype, obj, old)
                rtype.default(obj, old, self.store.alloc)
            except (FieldError, st.ApiError):
                pass  # preloaded objects may carry IPs outside our range; keep them as given
            rtype.zero_fields(obj)
            meta["resourceVersion"] = str(self.store.next_rv())
            self.store.commit(rtype.plural, "MODIFIED" if old else "ADDED", obj, old)
            return obj


def _without_meta(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _same(a, b):
    def strip(o):
        o = copy.deepcopy(o)
        o["metadata"].pop("resourceVersion", None)
        for e in o["metadata"].get("managedFields") or []:
            e.pop("time", None)
        return o
    return strip(a) == strip(b)


def _apply_conflict(rtype, name, c):
    causes, lines = [], []
    for manager, api_version, path in c.conflicts:
        msg = f'conflict with "{manager}" using {api_version}'
        causes.append({"reason": "FieldManagerConflict", "message": msg,
                       "field": path_string(path)})
        lines.append(f"{msg}: {path_string(path)}")
    n = len(lines)
    if n == 1:
        message = f"Apply failed with 1 conflict: {lines[0]}"
    else:
        message = f"Apply failed with {n} conflicts: " + "\n- ".join([""] + lines).lstrip("\n")
    details = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.plural
    details["causes"] = causes
    return st.ApiError(st.status(409, message, "Conflict", details))


def table_for(rtype, objects, list_rv, include_object="Metadata", with_columns=True,
              continue_token=""):
    rows = []
    for obj in objects:
        row = {"cells": rtype.table_row(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": meta}
        rows.append(row)
    table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
             "metadata": {"resourceVersion": str(list_rv)}}
    if continue_token:
        table["metadata"]["continue"] = continue_token
    table["columnDefinitions"] = rtype.columns if with_columns else None
    table["rows"] = rows
    return table

