"""Runs sluice-kube-watch (controlplane/kube's CLI) and reads what it prints.

The binary comes from $SLUICE_KUBE_WATCH (set by CTest), else <repo>/build/controlplane/kube/.
Each instance reads stdout on a thread: `events` is every JSON line so far, `state()` asks the
process for its store, `wait_for_state()` waits until that store equals what the server holds.
stderr (the klog lines) is kept for assertions and printed when a test fails.
"""

import json
import os
import queue
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def binary():
    path = os.environ.get("SLUICE_KUBE_WATCH")
    if path:
        return path
    return os.path.join(REPO, "build", "controlplane", "kube", "sluice-kube-watch")


class KubeWatch:
    def __init__(self, *args, env=None):
        self.args = [binary(), "--commands", "--backoff-initial-ms", "100", "--backoff-cap-ms",
                     "1000", *args]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("KUBERNETES_", "KUBECONFIG"))}
        full_env.update(env or {})
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env)
        self.events = []
        self._lock = threading.Lock()
        self._states = queue.Queue()
        self._stderr = []
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if event["event"] == "state":
                self._states.put(event)
            else:
                with self._lock:
                    self.events.append(event)

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._lock:
                self._stderr.append(line)

    @property
    def stderr(self):
        with self._lock:
            return "".join(self._stderr)

    def changes(self):
        """add/update/delete events so far, as (event, key, resourceVersion)."""
        with self._lock:
            return [(e["event"], e["key"], e["resourceVersion"]) for e in self.events
                    if e["event"] in ("add", "update", "delete")]

    def wait(self, predicate, timeout=15.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sluice-kube-watch exited rc={self.proc.returncode} "
                                     f"waiting for {what}\n{self.stderr}")
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}\n{self.stderr}")

    def wait_synced(self, timeout=15.0):
        self.wait(lambda: any(e["event"] == "synced" for e in list(self.events)), timeout,
                  "synced")

    def state(self, timeout=5.0):
        """{"resourceVersion": last synced RV, "items": {key: resourceVersion}}."""
        self.proc.stdin.write("state\n")
        self.proc.stdin.flush()
        return self._states.get(timeout=timeout)

    def replayed_state(self):
        """The state implied by the add/update/delete events; raises on an impossible sequence
        (an add for a key already there, an update or delete of an unknown key)."""
        state = {}
        for event, key, rv in self.changes():
            if event == "add":
                if key in state:
                    raise AssertionError(f"add of {key}@{rv}, already there at {state[key]}")
                state[key] = rv
            elif event == "update":
                if key not in state:
                    raise AssertionError(f"update of unknown {key}")
                state[key] = rv
            else:
                if state.pop(key, None) is None:
                    raise AssertionError(f"delete of unknown {key}")
        return state

    def wait_for_state(self, want, timeout=15.0):
        """Until the store, and the state its events add up to, equal `want` {key: rv}."""
        last = {}

        def same():
            last["store"] = self.state()["items"]
            last["events"] = self.replayed_state()
            return last["store"] == want and last["events"] == want
        try:
            self.wait(same, timeout, "the server's state")
        except AssertionError as e:
            raise AssertionError(f"{e}\nwant:   {want}\nstore:  {last.get('store')}\n"
                                 f"events: {last.get('events')}") from None

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.join(2)
        self._err.join(2)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        return self.proc.returncode


def run_once(*args, timeout=30, env=None):
    """sluice-kube-watch --exit-after-sync ...: (returncode, stdout events, stderr)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("KUBERNETES_", "KUBECONFIG"))}
    full_env.update(env or {})
    proc = subprocess.run([binary(), "--exit-after-sync", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)
    events = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
    return proc.returncode, events, proc.stderr
