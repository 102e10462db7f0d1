"""meta/v1 Status bodies, shaped like the ones kube-apiserver sends for each failure."""

STATUS_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                  405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
                  413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
                  429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                  504: "Timeout"}


class ApiError(Exception):
    def __init__(self, status, headers=None):
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers = headers or {}

    @property
    def code(self):
        return self.status["code"]


def status(code, message, reason=None, details=None, metadata=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {},
            "status": "Success" if code < 300 else "Failure"}
    if code >= 300:
        body["message"] = message
        if reason is None:
            reason = STATUS_REASONS.get(code)
        if reason:
            body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(rtype, name):
    d = {"name": name}
    if rtype.group:
        d["group"] = rtype.group
    d["kind"] = rtype.plural
    return d


def not_found(rtype, name):
    return ApiError(status(404, f'{rtype.group_resource} "{name}" not found',
                           details=_details(rtype, name)))


def already_exists(rtype, name):
    return ApiError(status(409, f'{rtype.group_resource} "{name}" already exists',
                           "AlreadyExists", _details(rtype, name)))


def conflict(rtype, name, why):
    return ApiError(status(409, f'Operation cannot be fulfilled on {rtype.group_resource} '
                                f'"{name}": {why}', "Conflict", _details(rtype, name)))


def stale_update(rtype, name):
    return conflict(rtype, name, "the object has been modified; please apply your changes to "
                                 "the latest version and try again")


def invalid(kind, group, name, errors):
    """422 for field.ErrorList `errors` (resources.FieldError) on object kind/name."""
    texts = [f"{e.field}: {e.message()}" for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": e.reason, "message": e.message(), "field": e.field}
                         for e in errors]
    qualified = f"{kind}.{group}" if group and kind != "ListOptions" else kind
    return ApiError(status(422, f'{qualified} "{name}" is invalid: {joined}', "Invalid", details))


def list_options_invalid(errors):
    texts = [f"{e.field}: {e.message()}" for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(status(422, f'ListOptions.meta.k8s.io "" is invalid: {joined}', "Invalid",
                           {"group": "meta.k8s.io", "kind": "ListOptions",
                            "causes": [{"reason": e.reason, "message": e.message(),
                                        "field": e.field} for e in errors]}))


def bad_request(message):
    return ApiError(status(400, message, "BadRequest"))


def expired(message, continue_token=None):
    meta = {"continue": continue_token} if continue_token else None
    return ApiError(status(410, message, "Expired", metadata=meta))


def too_large_rv(rv, current):
    return ApiError(status(504, f"Timeout: Too large resource version: {rv}, current: {current}",
                           "Timeout", {"causes": [{"reason": "ResourceVersionTooLarge",
                                                   "message": "Too large resource version"}],
                                       "retryAfterSeconds": 1}),
                    headers={"Retry-After": "1"})


def method_not_allowed():
    return ApiError(status(405, "the server does not allow this method on the requested resource",
                           "MethodNotAllowed", {}))


def path_not_found():
    return ApiError(status(404, "the server could not find the requested resource", "NotFound",
                           {}))


def unauthorized():
    return ApiError(status(401, "Unauthorized", "Unauthorized"))


def forbidden(user, verb, rtype, namespace):
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return ApiError(status(403, f'{rtype.group_resource} is forbidden: User "{user}" cannot '
                                f'{verb} resource "{rtype.plural}" in API group "{rtype.group}"'
                                f'{where}', "Forbidden", {"kind": rtype.plural}))


def internal(message, reason="InternalError"):
    return ApiError(status(500, message, reason))


def for_code(code, message=None, retry_after=None):
    """A plausible Status for an injected fault with this HTTP code."""
    defaults = {429: "Too many requests, please try again later.",
                500: "Internal error occurred: injected fault",
                503: "the server is currently unable to handle the request",
                504: "Timeout: request did not complete within the allotted timeout",
                410: "too old resource version: 1 (2)"}
    details = {"retryAfterSeconds": retry_after} if retry_after is not None else None
    return status(code, message or defaults.get(code, f"injected fault {code}"),
                  details=details)
