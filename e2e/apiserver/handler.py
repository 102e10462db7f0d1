"""HTTP/1.1 front end: authentication, fault hooks, routing, content negotiation, watch streams,
and the /_admin control API."""

import collections
import copy
import http.server
import json
import random
import select
import socket
import ssl
import time
import urllib.parse
import uuid

import yaml

from . import discovery
from . import status as st
from .registry import Options, table_for
from .resources import BY_PLURAL, GROUP_VERSIONS, FieldError, now_rfc3339
from .selector import FieldSelector, LabelSelector, SelectorError
from .store import Expired, Watcher

MAX_BODY = 3 * 1024 * 1024
TRUE_WORDS = ("1", "t", "T", "true", "True", "TRUE")
FALSE_WORDS = ("0", "f", "F", "false", "False", "FALSE")
ANONYMOUS_PATHS = ("/version", "/healthz", "/livez", "/readyz")


def parse_bool(value, name):
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise st.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax for {name}')


def parse_accept(header):
    """Media ranges in the client's order: [(type, {param: value})]."""
    out = []
    for part in (header or "").split(","):
        bits = [b.strip() for b in part.split(";") if b.strip()]
        if not bits:
            continue
        params = {}
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


class Media:
    """The negotiated response form: json | yaml | table | pom (PartialObjectMetadata)."""

    def __init__(self, form, version="v1"):
        self.form, self.version = form, version

    @property
    def content_type(self):
        if self.form == "yaml":
            return "application/yaml"
        if self.form == "table":
            return f"application/json;as=Table;v={self.version};g=meta.k8s.io"
        if self.form == "pom":
            return f"application/json;as=PartialObjectMetadataList;v={self.version};g=meta.k8s.io"
        return "application/json"


def negotiate(accept_header):
    ranges = parse_accept(accept_header)
    if not ranges:
        return Media("json")
    for mtype, params in ranges:
        as_ = params.get("as")
        if mtype in ("application/json", "*/*", "application/*"):
            if not as_:
                return Media("json")
            if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                if as_ == "Table":
                    return Media("table", params["v"])
                if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                    return Media("pom", params["v"])
        elif mtype == "application/yaml" and not as_:
            return Media("yaml")
    raise st.ApiError(st.status(406, "only the following media types are accepted: "
                                     "application/json, application/yaml, "
                                     "application/vnd.kubernetes.protobuf", "NotAcceptable"))


def dumps(obj):
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


class ClientGone(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-test-apiserver"
    sys_version = ""

    # ------------------------------------------------------------ plumbing
    @property
    def rt(self):
        return self.server.runtime

    def log_message(self, fmt, *args):  # request lines go to the runtime's log instead
        pass

    def setup(self):
        super().setup()
        self.epoch = self.rt.epoch
        self.rt.track(self.connection, True)

    def server_stopping(self):
        return self.rt.stopping or self.epoch != self.rt.epoch

    def finish(self):
        try:
            super().finish()
        finally:
            self.rt.track(self.connection, False)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    raise st.ApiError(st.status(413, "Request entity too large: limit is 3145728",
                                                "RequestEntityTooLarge"))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise st.ApiError(st.status(413, "Request entity too large: limit is 3145728",
                                        "RequestEntityTooLarge"))
        return self.rfile.read(length) if length else b""

    def send_body(self, code, body, content_type="application/json", headers=None):
        self.status_code = code
        self.send_response(code)
        self.send_header("Audit-Id", self.audit_id)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for one in v:
                    self.send_header(k, one)
            else:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_object(self, code, obj, media=None, headers=None):
        if media is not None and media.form == "yaml":
            body = yaml.safe_dump(obj, sort_keys=False).encode()
        else:
            body = dumps(obj)
        self.send_body(code, body, media.content_type if media else "application/json", headers)

    def send_error_status(self, err):
        headers = dict(err.headers)
        self.send_object(err.code, err.status, None, headers)

    # ------------------------------------------------------------ entry
    def dispatch(self, method):
        self.audit_id = str(uuid.uuid4())
        self._body_read, self._body = False, b""
        self.streaming = False
        self.status_code = 0
        self.user = ""
        started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        self.params = {k: v[0] for k, v in urllib.parse.parse_qs(
            url.query, keep_blank_values=True).items()}
        watch_requested = self.params.get("watch") in TRUE_WORDS or "/watch/" in path
        try:
            if path.startswith("/_admin"):
                self.check_admin()
                self.serve_admin(method, path)
                return
            self.rt.faults.wait_resumed(self.server_stopping)
            if self.server_stopping():
                self.close_connection = True
                return
            rule = self.rt.faults.take(method, path, watch_requested)
            if rule is not None:
                if self.serve_fault(rule):
                    return
            self.user = self.authenticate()
            self.route(method, path)
        except st.ApiError as e:
            if self.streaming:
                self.abort_stream()
            else:
                self.read_remaining_body()
                self.send_error_status(e)
        except ClientGone:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        except Exception as e:  # a bug here must answer 500, never hang the client
            self.rt.log("E", f"{method} {self.path}: {type(e).__name__}: {e}")
            self.close_connection = True
            if self.streaming:
                self.abort_stream()
            else:
                try:
                    self.send_error_status(st.internal(f"Internal error occurred: {e}"))
                except OSError:
                    pass
        finally:
            self.rt.record(method, self.path, self.status_code, self.headers, self.user,
                           watch_requested, time.monotonic() - started)

    def read_remaining_body(self):
        if not getattr(self, "_body_read", False) and self.command in ("POST", "PUT", "PATCH",
                                                                       "DELETE"):
            try:
                self.body()
            except st.ApiError:
                self.close_connection = True

    def body(self):
        if not getattr(self, "_body_read", False):
            self._body = self.read_body()
            self._body_read = True
        return self._body

    def serve_fault(self, rule):
        """True when the fault answered the request."""
        if rule.action == "delay":
            time.sleep(rule.delay)
            return False
        if rule.action == "close":
            self.close_connection = True
            self.status_code = -1
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        self.read_remaining_body()
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        if rule.body is not None:
            body = rule.body if isinstance(rule.body, (bytes, bytearray)) else (
                rule.body.encode() if isinstance(rule.body, str) else dumps(rule.body))
            self.send_body(rule.code, bytes(body), rule.content_type or "application/json",
                           headers)
        else:
            self.send_object(rule.code, st.for_code(rule.code, rule.message, rule.retry_after),
                             None, headers)
        return True

    # ------------------------------------------------------------ auth
    def peer_cert_user(self):
        if not isinstance(self.connection, ssl.SSLSocket):
            return None
        cert = self.connection.getpeercert()
        if not cert:
            return None
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return "unknown-cert-user"

    def authenticate(self):
        cfg = self.rt.config
        user = self.peer_cert_user()
        if user:
            return user
        auth = self.headers.get("Authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer" and token.strip() in cfg.tokens:
                return cfg.tokens[token.strip()]
            raise st.unauthorized()
        if cfg.auth_required and not cfg.anonymous:
            raise st.unauthorized()
        return "system:anonymous"

    def authorize_nonresource(self, path):
        if self.user == "system:anonymous" and self.rt.config.auth_required and \
                not path.startswith(ANONYMOUS_PATHS):
            raise st.ApiError(st.status(403, f'forbidden: User "system:anonymous" cannot get path '
                                             f'"{path}"', "Forbidden", {}))

    def authorize_resource(self, verb, rtype, ns):
        if self.user == "system:anonymous" and self.rt.config.auth_required:
            raise st.forbidden(self.user, verb, rtype, ns)

    def check_admin(self):
        token = self.rt.config.admin_token
        if token and self.headers.get("Authorization", "") != f"Bearer {token}":
            raise st.unauthorized()

    # ------------------------------------------------------------ routing
    def route(self, method, path):
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(
                ("/healthz/", "/livez/", "/readyz/")):
            self.authorize_nonresource(path)
            body = (f"[+]ping ok\n[+]etcd ok\n{path.strip('/').split('/')[0]} check passed\n"
                    if "verbose" in self.params else "ok")
            return self.send_body(200, body.encode(), "text/plain; charset=utf-8",
                                  {"X-Content-Type-Options": "nosniff"})
        if path == "/version":
            self.authorize_nonresource(path)
            return self.send_object(200, discovery.version_info(self.rt.config.k8s_version))
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[0] == "openapi":
            self.authorize_nonresource(path)
            return self.serve_openapi(parts)
        if parts[0] == "api":
            if len(parts) <= 2:
                self.authorize_nonresource(path)
            if len(parts) == 1:
                return self.serve_discovery_root(True)
            if parts[1] != "v1":
                raise st.path_not_found()
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis":
            if len(parts) <= 3:
                self.authorize_nonresource(path)
            if len(parts) == 1:
                return self.serve_discovery_root(False)
            group = parts[1]
            if not any(g == group for g, _ in GROUP_VERSIONS):
                raise st.path_not_found()
            if len(parts) == 2:
                return self.send_object(200, discovery.api_group(group))
            version, rest = parts[2], parts[3:]
            if (group, version) not in GROUP_VERSIONS:
                raise st.path_not_found()
        else:
            raise st.path_not_found()
        if not rest:
            if method != "GET":
                raise st.method_not_allowed()
            return self.send_object(200, discovery.api_resource_list(group, version))
        return self.route_resource(method, group, version, rest)

    def route_resource(self, method, group, version, rest):
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            if len(rest) == 2:
                return self.serve_namespace(method, group, rest[1])
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise st.path_not_found()
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if group == "" and plural == "events" and method == "GET" and name is None:
            return self.send_object(200, {"kind": "EventList", "apiVersion": "v1",
                                          "metadata": {"resourceVersion": str(self.rt.store.rv)},
                                          "items": []})
        rtype = BY_PLURAL.get(plural)
        if rtype is None or (rtype.group, rtype.version) != (group, version):
            raise st.path_not_found()
        if (ns is not None and not rtype.namespaced) or (
                ns is None and rtype.namespaced and name is not None):
            raise st.path_not_found()
        if sub is not None and not (sub == "status" and rtype.has_status):
            raise st.path_not_found()
        ns = ns or ""
        if method in ("GET", "HEAD"):
            watch = watch_path or parse_bool(self.params.get("watch", "false"), "watch")
            if watch:
                if sub is not None:
                    raise st.method_not_allowed()
                self.authorize_resource("watch", rtype, ns)
                return self.serve_watch(rtype, ns, name)
            if name is None:
                self.authorize_resource("list", rtype, ns)
                return self.serve_list(rtype, ns)
            self.authorize_resource("get", rtype, ns)
            media = negotiate(self.headers.get("Accept"))
            obj = self.rt.registry.get(rtype, ns, name)
            return self.send_object(200, self.render_one(rtype, obj, media), media)
        if watch_path:
            raise st.method_not_allowed()
        opts = self.write_options()
        if method == "POST":
            if name is not None:
                raise st.method_not_allowed()
            self.authorize_resource("create", rtype, ns)
            media = negotiate(self.headers.get("Accept"))
            warnings = []
            obj = self.rt.registry.decode(rtype, self.body(), self.headers.get("Content-Type"),
                                          opts, warnings)
            created = self.rt.registry.create(rtype, ns, obj, opts)
            return self.send_object(201, self.render_one(rtype, created, media), media,
                                    self.warning_headers(warnings))
        if method == "PUT":
            if name is None:
                raise st.method_not_allowed()
            self.authorize_resource("update", rtype, ns)
            media = negotiate(self.headers.get("Accept"))
            warnings = []
            obj = self.rt.registry.decode(rtype, self.body(), self.headers.get("Content-Type"),
                                          opts, warnings)
            out, created = self.rt.registry.update(rtype, ns, name, obj, opts, sub or "")
            return self.send_object(201 if created else 200, self.render_one(rtype, out, media),
                                    media, self.warning_headers(warnings))
        if method == "PATCH":
            if name is None:
                raise st.method_not_allowed()
            self.authorize_resource("patch", rtype, ns)
            media = negotiate(self.headers.get("Accept"))
            out, created, warnings = self.rt.registry.patch(
                rtype, ns, name, self.body(), self.headers.get("Content-Type"), opts, sub or "")
            return self.send_object(201 if created else 200, self.render_one(rtype, out, media),
                                    media, self.warning_headers(warnings))
        if method == "DELETE":
            if sub is not None:
                raise st.method_not_allowed()
            raw = self.body()
            try:
                options = json.loads(raw) if raw.strip() else {}
            except ValueError as e:
                raise st.bad_request(f"error decoding DeleteOptions: {e}") from None
            if name is None:
                self.authorize_resource("deletecollection", rtype, ns)
                label_sel, field_sel = self.selectors(rtype)
                out = self.rt.registry.delete_collection(rtype, ns, label_sel, field_sel, opts)
                return self.send_object(200, out)
            self.authorize_resource("delete", rtype, ns)
            code, out = self.rt.registry.delete(rtype, ns, name, options, opts)
            return self.send_object(code, out)
        raise st.method_not_allowed()

    def serve_namespace(self, method, group, name):
        if group != "" or method != "GET":
            raise st.path_not_found()
        return self.send_object(200, {"kind": "Namespace", "apiVersion": "v1",
                                      "metadata": {"name": name, "labels": {
                                          "kubernetes.io/metadata.name": name}},
                                      "spec": {"finalizers": ["kubernetes"]},
                                      "status": {"phase": "Active"}})

    def write_options(self):
        dry = self.params.get("dryRun", "")
        if dry not in ("", "All"):
            raise st.invalid("CreateOptions", "meta.k8s.io", "", [FieldError(
                "unsupported", "dryRun", value=dry, supported=["All"])])
        fv = self.params.get("fieldValidation", "")
        if fv not in ("", "Ignore", "Warn", "Strict"):
            raise st.bad_request(f'fieldValidation: Unsupported value: "{fv}": supported values: '
                                 '"Ignore", "Warn", "Strict"')
        force = None
        if "force" in self.params:
            force = parse_bool(self.params["force"], "force")
        return Options(self.params.get("fieldManager", ""), dry == "All", fv, force,
                       self.headers.get("User-Agent", ""))

    @staticmethod
    def warning_headers(warnings):
        if not warnings:
            return None
        return {"Warning": ['299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'
                            for w in warnings]}

    def selectors(self, rtype):
        try:
            return (LabelSelector(self.params.get("labelSelector", "")),
                    FieldSelector(self.params.get("fieldSelector", ""), rtype))
        except SelectorError as e:
            raise st.bad_request(str(e)) from None

    # ------------------------------------------------------------ rendering
    def render_one(self, rtype, obj, media):
        if media.form == "table":
            table = table_for(rtype, [obj], obj["metadata"].get("resourceVersion", ""),
                              self.params.get("includeObject", "Metadata"))
            table["apiVersion"] = f"meta.k8s.io/{media.version}"
            return table
        if media.form == "pom":
            return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{media.version}",
                    "metadata": obj["metadata"]}
        return obj

    def serve_list(self, rtype, ns):
        media = negotiate(self.headers.get("Accept"))
        label_sel, field_sel = self.selectors(rtype)
        try:
            limit = int(self.params.get("limit") or 0)
        except ValueError:
            raise st.bad_request(f'invalid limit "{self.params.get("limit")}"') from None
        if "sendInitialEvents" in self.params:
            raise st.list_options_invalid([FieldError(
                "forbidden", "sendInitialEvents", "sendInitialEvents is forbidden for list")])
        items, list_rv, token, remaining = self.rt.registry.list(
            rtype, ns, label_sel, field_sel, self.params.get("resourceVersion", ""),
            self.params.get("resourceVersionMatch", ""), limit, self.params.get("continue", ""))
        if media.form == "table":
            table = table_for(rtype, items, list_rv, self.params.get("includeObject", "Metadata"),
                              continue_token=token)
            table["apiVersion"] = f"meta.k8s.io/{media.version}"
            return self.send_object(200, table, media)
        meta = {"resourceVersion": str(list_rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        if media.form == "pom":
            body = {"kind": "PartialObjectMetadataList", "apiVersion":
                    f"meta.k8s.io/{media.version}", "metadata": meta,
                    "items": [{"kind": "PartialObjectMetadata",
                               "apiVersion": f"meta.k8s.io/{media.version}",
                               "metadata": o["metadata"]} for o in items]}
            return self.send_object(200, body, media)
        listed = []
        for o in items:
            o = dict(o)
            o.pop("kind", None)
            o.pop("apiVersion", None)
            listed.append(o)
        body = {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta,
                "items": listed}
        return self.send_object(200, body, media)

    def serve_discovery_root(self, legacy_core):
        for mtype, params in parse_accept(self.headers.get("Accept")):
            if mtype == "application/json" and params.get("g") == "apidiscovery.k8s.io" and \
                    params.get("as") == "APIGroupDiscoveryList" and \
                    params.get("v") in ("v2", "v2beta1"):
                ctype = discovery.AGGREGATED_V2 if params["v"] == "v2" else \
                    discovery.AGGREGATED_V2BETA1
                return self.send_body(200, dumps(discovery.aggregated(legacy_core, params["v"])),
                                      ctype, {"Vary": "Accept"})
        if legacy_core:
            host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
            return self.send_object(200, discovery.api_versions(host))
        return self.send_object(200, discovery.api_group_list())

    def serve_openapi(self, parts):
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return self.send_object(200, discovery.openapi_v3_index())
            gv = discovery.openapi_v3_lookup("/".join(parts[2:]))
            if gv is not None:
                return self.send_body(200, dumps(discovery.openapi_v3_gv(*gv)),
                                      "application/json",
                                      {"Cache-Control": "public, immutable",
                                       "Etag": '"' + discovery.openapi_v3_hash(*gv) + '"'})
        raise st.path_not_found()

    # ------------------------------------------------------------ watch
    def serve_watch(self, rtype, ns, name):
        media = negotiate(self.headers.get("Accept"))
        label_sel, field_sel = self.selectors(rtype)
        if name is not None:  # deprecated single-object watch path
            try:
                field_sel = FieldSelector(",".join(filter(None, [
                    self.params.get("fieldSelector", ""), f"metadata.name={name}"])), rtype)
            except SelectorError as e:
                raise st.bad_request(str(e)) from None
        rv = self.params.get("resourceVersion", "")
        rv_match = self.params.get("resourceVersionMatch", "")
        send_initial = None
        if "sendInitialEvents" in self.params:
            send_initial = parse_bool(self.params["sendInitialEvents"], "sendInitialEvents")
        allow_bm = parse_bool(self.params.get("allowWatchBookmarks", "false"),
                              "allowWatchBookmarks")
        cfg = self.rt.config
        errors = []
        if send_initial is not None:
            if rv_match != "NotOlderThan":
                errors.append(FieldError("forbidden", "resourceVersionMatch",
                                         "sendInitialEvents requires setting resourceVersionMatch "
                                         "to NotOlderThan"))
            if not cfg.watch_list:
                errors.append(FieldError("forbidden", "sendInitialEvents",
                                         "sendInitialEvents is forbidden for watch unless the "
                                         "WatchList feature gate is enabled"))
        if rv_match:
            if send_initial is None:
                errors.append(FieldError("forbidden", "resourceVersionMatch",
                                         "resourceVersionMatch is forbidden for watch unless "
                                         "sendInitialEvents is provided"))
            elif rv_match != "NotOlderThan":
                errors.append(FieldError("unsupported", "resourceVersionMatch", value=rv_match,
                                         supported=["NotOlderThan"]))
        if errors:
            raise st.list_options_invalid(errors)
        wanted = None
        if rv not in ("", "0"):
            try:
                wanted = int(rv)
                if wanted < 0:
                    raise ValueError
            except ValueError:
                raise st.bad_request(f'invalid resource version "{rv}"') from None
        try:
            timeout = int(self.params.get("timeoutSeconds") or 0)
        except ValueError:
            raise st.bad_request("invalid timeoutSeconds") from None
        if timeout <= 0:
            timeout = random.uniform(cfg.min_request_timeout, 2 * cfg.min_request_timeout)

        store = self.rt.store
        w = Watcher(rtype, ns or None, label_sel, field_sel, 0)
        initial, end_bookmark, expired = [], None, None
        with store.cond:
            replay = send_initial is True or (send_initial is None and wanted is None)
            if replay:
                if wanted is not None and wanted > store.rv:
                    raise st.too_large_rv(wanted, store.rv)
                objs = store.state(rtype.plural).objects
                initial = [objs[k] for k in sorted(objs) if w.matches(objs[k])]
                w.min_rv = store.rv
                store.register(w, None)
                if send_initial and allow_bm:
                    end_bookmark = store.rv
            else:
                start = wanted if wanted is not None else store.rv
                w.min_rv = start
                try:
                    store.register(w, start)
                except Expired as e:
                    expired = e
        if expired is not None:
            err = st.expired(str(expired))
            if cfg.watch_expired == "http":
                raise err
            self.start_stream(media)
            self.write_event({"type": "ERROR", "object": err.status})
            self.end_stream()
            return
        try:
            self.start_stream(media)
            self.stream(w, rtype, media, initial, end_bookmark, allow_bm, timeout)
        finally:
            store.unregister(w)

    def start_stream(self, media):
        self.status_code = 200
        self.streaming = True
        self.chunked = self.request_version == "HTTP/1.1"
        self.send_response(200)
        self.send_header("Audit-Id", self.audit_id)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", media.content_type if media.form != "yaml"
                         else "application/json")
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.table_columns_sent = False

    def write_raw(self, data):
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.wfile.write(data)
        self.wfile.flush()

    def write_event(self, event):
        self.write_raw(dumps(event))

    def end_stream(self):
        if self.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        else:
            self.close_connection = True

    def abort_stream(self):
        """Cut the connection in the middle of a chunk, like a crashed server or a proxy reset."""
        self.close_connection = True
        try:
            if self.chunked:
                self.wfile.write(b"400\r\n{\"type\":\"MODIFIED\",\"obj")
                self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wire_object(self, rtype, obj, media, rv=None):
        if rv is not None:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(rv)
        if media.form == "table":
            table = table_for(rtype, [obj], obj["metadata"].get("resourceVersion", ""),
                              self.params.get("includeObject", "Metadata"),
                              with_columns=not self.table_columns_sent)
            table["apiVersion"] = f"meta.k8s.io/{media.version}"
            self.table_columns_sent = True
            return table
        if media.form == "pom":
            return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{media.version}",
                    "metadata": obj["metadata"]}
        return obj

    def bookmark(self, rtype, media, rv, initial_end=False):
        obj = rtype.bookmark_object(rv)
        if initial_end:
            obj["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
        if media.form == "table":
            obj = {"kind": "Table", "apiVersion": f"meta.k8s.io/{media.version}",
                   "metadata": {"resourceVersion": str(rv)}, "columnDefinitions": None,
                   "rows": None}
        elif media.form == "pom":
            obj = {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{media.version}",
                   "metadata": obj["metadata"]}
        self.write_event({"type": "BOOKMARK", "object": obj})

    @staticmethod
    def translate(w, ev):
        """A stored event as this watcher sees it: (type, obj, override_rv) or None."""
        if ev.rv <= w.min_rv:
            return None
        if ev.type == "ADDED":
            return ("ADDED", ev.obj, None) if w.matches(ev.obj) else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj, None) if w.matches(ev.obj) else None
        now, before = w.matches(ev.obj), w.matches(ev.prev)
        if now and before:
            return ("MODIFIED", ev.obj, None)
        if now:
            return ("ADDED", ev.obj, None)
        if before:
            return ("DELETED", ev.prev, ev.rv)
        return None

    def client_gone(self):
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        try:
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.setblocking(False)
                try:
                    data = self.connection.recv(1)
                except ssl.SSLWantReadError:
                    return False
                finally:
                    self.connection.setblocking(True)
            else:
                data = self.connection.recv(1, socket.MSG_PEEK)
            return data == b""
        except (OSError, ssl.SSLError):
            return True

    def stream(self, w, rtype, media, initial, end_bookmark, allow_bm, timeout):
        rt = self.rt
        store = rt.store
        # Initial events go out in writes of up to 64 KiB, as kube-apiserver flushes a watch only
        # when no further event is queued: one write (and TLS record) per event costs the server
        # more than the client spends reading them.
        pending, size = [], 0
        for obj in initial:
            data = dumps({"type": "ADDED", "object": self.wire_object(rtype, obj, media)})
            pending.append(data)
            size += len(data)
            if size >= 65536:
                self.write_raw(b"".join(pending))
                pending, size = [], 0
        if pending:
            self.write_raw(b"".join(pending))
        if end_bookmark is not None:
            self.bookmark(rtype, media, end_bookmark, initial_end=True)
        deadline = time.monotonic() + timeout
        interval = rt.config.bookmark_interval
        next_bm = time.monotonic() + interval if interval > 0 else None
        last_rv = w.min_rv
        while True:
            with store.cond:
                while not self.server_stopping():
                    now = time.monotonic()
                    if w.queue and not rt.faults.paused:
                        break
                    if now >= deadline or (allow_bm and next_bm and now >= next_bm
                                           and not rt.faults.paused):
                        break
                    wait = min(deadline - now, 0.25)
                    if allow_bm and next_bm:
                        wait = min(wait, max(next_bm - now, 0.01))
                    store.cond.wait(wait)
                    if self.client_gone():
                        raise ClientGone()
                items = [] if rt.faults.paused else list(w.queue)
                if not rt.faults.paused:
                    w.queue.clear()
                current_rv = store.rv
                overflowed = w.overflowed
            if self.server_stopping():
                self.abort_stream()
                return
            if overflowed:  # like the watch cache terminating a watcher that cannot keep up
                self.end_stream()
                return
            for kind, item in items:
                if kind == "control":
                    if self.control(w, rtype, media, item, current_rv):
                        return
                    continue
                out = self.translate(w, item)
                if out is not None:
                    typ, obj, rv = out
                    self.write_event({"type": typ, "object": self.wire_object(rtype, obj, media,
                                                                              rv)})
                last_rv = max(last_rv, item.rv)
            now = time.monotonic()
            if allow_bm and next_bm and now >= next_bm:
                if current_rv >= last_rv:
                    self.bookmark(rtype, media, current_rv)
                    last_rv = current_rv
                next_bm = now + rt.config.bookmark_interval
            if now >= deadline:
                self.end_stream()
                return

    def control(self, w, rtype, media, msg, current_rv):
        """Handle one admin control message; True when the stream is over."""
        op = msg.get("op")
        if op == "drop":
            if msg.get("mode") == "clean":
                self.end_stream()
            else:
                self.abort_stream()
            return True
        if op == "bookmark":
            self.bookmark(rtype, media, max(current_rv, w.min_rv))
            return False
        if op != "inject":
            return False
        what = msg.get("what")
        sample = {"kind": rtype.kind, "apiVersion": rtype.api_version,
                  "metadata": {"name": "injected", "namespace": w.namespace or "default",
                               "resourceVersion": str(current_rv)}}
        if what == "truncated":
            line = dumps({"type": "MODIFIED", "object": sample})
            self.write_raw(line[: len(line) // 2])
            self.abort_stream()
            return True
        if what == "malformed":
            self.write_raw(b'{"type":"MODIFIED","object":{"kind":"' + rtype.kind.encode() +
                           b'","metadata":{"name":\n')
        elif what == "unknown-type":
            self.write_event({"type": msg.get("type", "FROBNICATED"), "object": sample})
        elif what == "unknown-kind":
            self.write_event({"type": "ADDED", "object": {
                "kind": "Frobnicator", "apiVersion": "example.com/v1",
                "metadata": {"name": "frob", "namespace": "default",
                             "resourceVersion": str(current_rv)}}})
        elif what == "status-object":
            self.write_event({"type": msg.get("type", "MODIFIED"),
                              "object": st.for_code(int(msg.get("code", 500)))})
        elif what == "error":
            code = int(msg.get("code", 410))
            body = st.for_code(code, msg.get("message"))
            if code == 410:
                body = st.expired(msg.get("message") or
                                  f"too old resource version: {w.min_rv} ({current_rv})").status
            self.write_event({"type": "ERROR", "object": body})
            self.end_stream()
            return True
        elif what == "raw":
            data = msg.get("data", "")
            self.write_raw(data.encode() if isinstance(data, str) else data)
        return False

    # ------------------------------------------------------------ admin
    def serve_admin(self, method, path):
        rt = self.rt
        raw = self.body() if method in ("POST", "PUT", "DELETE") else b""
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise st.bad_request(f"admin body is not JSON: {e}") from None
        args.update({k: v for k, v in self.params.items() if k not in args})
        op = path[len("/_admin/"):] if path.startswith("/_admin/") else ""
        result = rt.admin(op, method, args, raw)
        if result is None:
            raise st.path_not_found()
        self.send_object(200, result)


class RequestLog:
    def __init__(self, size=5000):
        self.entries = collections.deque(maxlen=size)

    def add(self, **entry):
        entry["time"] = now_rfc3339()
        self.entries.append(entry)
