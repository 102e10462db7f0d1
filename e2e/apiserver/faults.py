"""Fault injection for client tests: canned failures for the next N matching requests, and a
pause switch that holds requests (and event delivery) until resumed.

Watch-stream faults (drop, malformed lines, unknown kinds ...) are control messages queued to open
watches through Store.control; see handler.WatchStream.
"""

import re
import threading
import time

WATCH_INJECTIONS = ("truncated", "malformed", "unknown-type", "unknown-kind", "status-object",
                    "error", "raw")


class FaultRule:
    """Answer the next `count` requests that match with `code` (or another action).

    action: "status" (a Status body for code, or `body` verbatim), "close" (drop the connection
    without an answer), "delay" (sleep `delay` seconds, then serve normally)."""

    def __init__(self, count=1, code=500, retry_after=None, method=None, path=None, watch=None,
                 message=None, body=None, action="status", delay=0.0, content_type=None):
        if action not in ("status", "close", "delay"):
            raise ValueError(f"unknown fault action {action!r}")
        self.count = int(count)
        self.code = int(code)
        self.retry_after = retry_after
        self.method = method.upper() if method else None
        self.path = re.compile(path) if path else None
        self.watch = watch
        self.message = message
        self.body = body
        self.action = action
        self.delay = float(delay)
        self.content_type = content_type

    def matches(self, method, path, is_watch):
        if self.method and self.method != method:
            return False
        if self.path and not self.path.search(path):
            return False
        if self.watch is not None and bool(self.watch) != is_watch:
            return False
        return True

    def describe(self):
        return {"count": self.count, "code": self.code, "retryAfter": self.retry_after,
                "method": self.method, "path": self.path.pattern if self.path else None,
                "watch": self.watch, "action": self.action, "delay": self.delay}


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self._resumed = threading.Event()
        self._resumed.set()

    def add(self, rule):
        with self._lock:
            self._rules.append(rule)

    def clear(self):
        with self._lock:
            self._rules.clear()
        self.resume()

    def take(self, method, path, is_watch):
        """The rule this request consumes, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.count > 0 and rule.matches(method, path, is_watch):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def rules(self):
        with self._lock:
            return [r.describe() for r in self._rules]

    @property
    def paused(self):
        return not self._resumed.is_set()

    def pause(self):
        self._resumed.clear()

    def resume(self):
        self._resumed.set()

    def wait_resumed(self, stopping, limit=600.0):
        """Hold the calling request while paused (until resume, server stop, or limit)."""
        deadline = time.monotonic() + limit
        while not self._resumed.is_set() and not stopping() and time.monotonic() < deadline:
            self._resumed.wait(0.1)
