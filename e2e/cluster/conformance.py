"""The conformance suite runner: scenarios named after the Kubernetes e2e tests they mirror, run
against a MiniCluster per backend, judged by what packets did.

    e2e/conformance [--backend=NAME] [--report=FILE] [--nodes N] [-k SUBSTRING] [--keep-going]

A scenario is a function taking a Scenario context, registered with @scenario; the runner
imports every cluster/scenarios_*.py. See README.md.
"""

import argparse
import collections
import glob
import importlib
import json
import os
import subprocess
import sys
import time
import traceback

import nstest
from cluster import minicluster, probes
from cluster.minicluster import (BACKENDS, SYNC_DEADLINE, BackendUnavailable,
                                 MiniCluster)

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# Registration

class ScenarioSpec:
    def __init__(self, name, fn, mirrors, min_nodes):
        self.name, self.fn, self.mirrors, self.min_nodes = name, fn, mirrors, min_nodes

    def __repr__(self):
        return f"scenario({self.name!r})"


SCENARIOS = []


def scenario(name, mirrors="", min_nodes=1):
    """Registers fn(t) as a scenario. name: short, after the Kubernetes test ("pod-to-pod across
    nodes: http"); mirrors: the full Kubernetes e2e test name; min_nodes: skipped on smaller
    clusters."""
    def register(fn):
        if any(s.name == name for s in SCENARIOS):
            raise ValueError(f"two scenarios named {name!r}")
        SCENARIOS.append(ScenarioSpec(name, fn, mirrors, min_nodes))
        return fn
    return register


def load_scenarios():
    for path in sorted(glob.glob(os.path.join(HERE, "scenarios_*.py"))):
        importlib.import_module(f"cluster.{os.path.basename(path)[:-3]}")
    return SCENARIOS


# ---------------------------------------------------------------------------
# The context of one scenario run

class ScenarioFailed(AssertionError):
    """What the packets did, against what was expected."""


def _names(pods):
    return sorted(p if isinstance(p, str) else p.name for p in pods)


class Scenario:
    """t in a scenario: the cluster, unique names, cleanup, and expectations that poll
    packets. Every pod and Service made through t is deleted after the scenario."""

    def __init__(self, cluster, spec, index):
        self.cluster = cluster
        self.spec = spec
        self.tag = f"s{index}"
        self._pods = []
        self._services = []
        self._counts = collections.Counter()
        self._cleanups = []
        self.notes = []

    # -- making things

    def app(self, base):
        """The app label value of this scenario's pods named `base`."""
        return f"{self.tag}-{base}"

    def add_pod(self, base, node, labels=None, ports=None, ready=True, **kw):
        """A pod named <tag>-<base>-<n> on node (index or name), labelled app=<tag>-<base>
        unless labels are given (kw: MiniCluster.add_pod's)."""
        name = f"{self.tag}-{base}-{self._counts[base]}"
        self._counts[base] += 1
        pod = self.cluster.add_pod(name, node, labels={"app": self.app(base)}
                                   if labels is None else labels, ports=ports, ready=ready, **kw)
        self._pods.append(pod)
        return pod

    def delete_pod(self, pod):
        self.cluster.delete_pod(pod)
        if pod in self._pods:
            self._pods.remove(pod)

    @staticmethod
    def port(name, port, target, protocol="TCP", node_port=None):
        p = {"name": name, "port": port, "targetPort": target, "protocol": protocol}
        if node_port:
            p["nodePort"] = node_port
        return p

    def create_service(self, base="web", ports=None, type="ClusterIP", selector=None,
                       families=("IPv4", "IPv6"), **spec):
        """Service <tag>-<base> selecting app=<tag>-<base> (unless selector is given), dual-stack
        by default, ports http 80->"http" and udp 90->"udp" unless given. The stored object."""
        name = f"{self.tag}-{base}"
        body = {"metadata": {"name": name},
                "spec": {"type": type,
                         "selector": {"app": self.app(base)} if selector is None else selector,
                         "ipFamilies": list(families),
                         "ipFamilyPolicy": "RequireDualStack" if len(families) > 1
                         else "SingleStack",
                         "ports": ports or [self.port("http", 80, "http"),
                                            self.port("udp", 90, "udp", "UDP")]}}
        body["spec"].update(spec)
        svc = self.cluster.create_service(body)
        self._services.append(name)
        return svc

    def delete_service(self, svc):
        name = svc if isinstance(svc, str) else svc["metadata"]["name"]
        self.cluster.delete_service(name)
        if name in self._services:
            self._services.remove(name)

    @staticmethod
    def cluster_ips(svc):
        return list(svc["spec"]["clusterIPs"])

    @staticmethod
    def node_port(svc, name):
        for p in svc["spec"]["ports"]:
            if p.get("name") == name:
                return p["nodePort"]
        raise KeyError(f"Service {svc['metadata']['name']} has no port {name!r}")

    def on_cleanup(self, fn, *args, **kw):
        """fn(*args, **kw) after the scenario, whatever happened (last in, first run), before
        its Services and pods are deleted."""
        self._cleanups.append((fn, args, kw))

    def cleanup(self):
        errors = []
        while self._cleanups:
            fn, args, kw = self._cleanups.pop()
            try:
                fn(*args, **kw)
            except Exception as e:
                errors.append(f"{getattr(fn, '__name__', fn)}: {e}")
        for name in reversed(self._services):
            try:
                self.cluster.delete_service(name)
            except Exception as e:
                errors.append(f"delete Service {name}: {e}")
        for pod in reversed(self._pods):
            try:
                self.cluster.delete_pod(pod)
            except Exception as e:
                errors.append(f"delete pod {pod.name}: {e}")
        self._services.clear()
        self._pods.clear()
        return errors

    # -- judging

    def note(self, msg):
        self.notes.append(msg)

    def fail(self, msg):
        raise ScenarioFailed(msg)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)

    def eventually(self, fn, accept, expected, deadline=SYNC_DEADLINE, interval=0.05):
        """Calls fn() (a probe) until accept(answer); returns that answer. Fails after deadline
        seconds with the last answer and what was expected."""
        end = time.monotonic() + deadline
        while True:
            answer = fn()
            if accept(answer):
                return answer
            if time.monotonic() >= end:
                self.fail(f"{answer}; expected {expected} (still so after {deadline:.0f}s)")
            time.sleep(interval)

    def expect_reply(self, where, proto, ip, port, pods, deadline=SYNC_DEADLINE):
        """Polls until a hostname probe (HTTP /hostname, UDP hostname, SCTP INIT) is answered by
        one of pods."""
        names = _names(pods)
        return self.eventually(lambda: probes.hostname(where, proto, ip, port),
                               lambda a: a.ok and a.text in names,
                               f"a reply from one of [{', '.join(names)}]", deadline)

    def expect_spread(self, where, proto, ip, port, pods, deadline=SYNC_DEADLINE, max_tries=200):
        """Polls until one of pods answers, then probes on until every one of them answered. An
        answer from anybody else fails at once; a probe that gets no answer is retried until the
        deadline (just after a UDP Service starts serving, the conntrack cleanup of its stale
        entries may cost a datagram or two, with kube-proxy as with us)."""
        names = _names(pods)
        end = time.monotonic() + deadline
        first = self.expect_reply(where, proto, ip, port, pods, deadline)
        seen = collections.Counter([first.text])
        lost = []
        tries = 0
        # Until every pod answered, for at least max_tries probes and until the deadline: an
        # endpoint just added shows once the agents' syncs are in (a few hundred ms for an
        # iptables-nft sync of both families), which a fast run of probes can outpace.
        while tries < max_tries or time.monotonic() <= end:
            if set(seen) == set(names):
                return seen
            tries += 1
            a = probes.hostname(where, proto, ip, port)
            if a.ok and a.text in names:
                seen[a.text] += 1
            elif a.ok:
                self.fail(f"{a}; expected every reply from one of [{', '.join(names)}] "
                          f"(answers so far: {dict(seen)})")
            else:
                lost.append(a)
        if set(seen) == set(names):
            return seen
        self.fail(f"{proto} {ip}:{port} from {probes.label(where)}: answers came from "
                  f"{dict(seen)}, never from {sorted(set(names) - set(seen))}"
                  + (f", {len(lost)} probe(s) unanswered (last: {lost[-1].reply()})"
                     if lost else "") +
                  f"; expected the Service to spread over [{', '.join(names)}]")

    def expect_only(self, where, proto, ip, port, pods, n=20):
        """n probes in a row, every one answered by one of pods."""
        names = _names(pods)
        seen = collections.Counter()
        for _ in range(n):
            a = probes.hostname(where, proto, ip, port)
            if not (a.ok and a.text in names):
                self.fail(f"{a}; expected every reply from one of [{', '.join(names)}] "
                          f"(answers so far: {dict(seen)})")
            seen[a.text] += 1
        return seen

    def expect_outcome(self, probe, outcome, expected=None, deadline=SYNC_DEADLINE):
        """Polls probe() (e.g. lambda: probes.tcp_connect(pod, ip, 80)) until its outcome is
        `outcome` ("refused", "timeout", ...)."""
        return self.eventually(probe, lambda a: a.outcome == outcome,
                               expected or f"{outcome}", deadline)

    def expect_source(self, where, proto, ip, port, source, why="", deadline=SYNC_DEADLINE):
        """Polls until the server answers, then requires it saw `source` as the client."""
        state = {}

        def fn():
            a, seen = probes.source_ip(where, proto, ip, port)
            state["seen"] = seen
            return a
        a = self.eventually(fn, lambda a: a.ok and state["seen"] is not None,
                            "an answer naming the client address", deadline)
        if state["seen"] != source:
            self.fail(f"{a}: the server saw the client as {state['seen']}, expected {source}"
                      + (f" ({why})" if why else ""))
        return a


# ---------------------------------------------------------------------------
# Running

class Result:
    def __init__(self, scenario, backend, result, reason="", seconds=0.0):
        self.scenario, self.backend, self.result = scenario, backend, result
        self.reason, self.seconds = reason, seconds

    def to_json(self):
        return {"scenario": self.scenario, "backend": self.backend, "result": self.result,
                "reason": self.reason, "seconds": round(self.seconds, 2)}


def _dead_agents(cluster):
    return [f"sluice-agent on {n.name} exited ({n.agent.proc.returncode}): "
            f"{n.agent.exit_reason()}" for n in cluster.nodes if not n.agent.running()]


class FailureLog:
    """The file next to the report where failures' evidence goes: agents' log tails, the
    scenario's pods' logs, each node's ruleset."""

    def __init__(self, path):
        self.path = path
        self.written = False

    def write(self, backend, scenario, reason, cluster, pods=()):
        out = [f"===== [{backend}] {scenario}: FAIL", reason, ""]
        if cluster is not None:
            if cluster.controller is not None and cluster.controller.errors:
                out.append("--- endpoint controller errors ---")
                out += cluster.controller.errors
            for name, lines in cluster.agent_log_tails(60).items():
                out.append(f"--- sluice-agent on {name} (last lines of "
                           f"{cluster.node(name).agent.log_path}) ---")
                out += lines
            for pod in pods:
                out.append(f"--- netexec of {pod.label} ({' '.join(pod.ips)}): requests ---")
                out += [f"{t:.3f} {p} {ip} {what}" for t, p, ip, what in pod.requests()[-20:]]
            for node in cluster.nodes:
                if backend.startswith("iptables-"):
                    tool = "iptables-" + backend.split("-", 1)[1] + "-save"
                    r = node.ns.run([tool], check=False)
                    lines = r.stdout.splitlines()
                    out.append(f"--- {tool} on {node.name} ({len(lines)} lines) ---")
                    out += lines[:300] + ([f"... {len(lines) - 300} more"] if len(lines) > 300
                                          else [])
                r = node.ns.run(["nft", "list", "ruleset"], check=False)
                lines = r.stdout.splitlines()
                out.append(f"--- nft list ruleset on {node.name} ({len(lines)} lines) ---")
                out += lines[:300] + ([f"... {len(lines) - 300} more"] if len(lines) > 300
                                      else [])
        with open(self.path, "a") as f:
            f.write("\n".join(out) + "\n\n")
        self.written = True


def run_backend(backend, specs, args, failure_log, emit):
    """One cluster; every scenario of specs on it. Returns [Result]."""
    results = []
    t0 = time.monotonic()
    cluster = MiniCluster(nodes=args.nodes, backend=backend)
    try:
        try:
            cluster.start()
        except BackendUnavailable as e:
            print(f"[{backend}] every scenario skipped: backend not implemented: {e}",
                  flush=True)
            return [emit(Result(s.name, backend, "skipped", f"backend not implemented: {e}"))
                    for s in specs]
        except Exception as e:
            reason = f"the cluster did not start: {e}"
            failure_log.write(backend, "(cluster start)", reason, cluster if cluster.nodes and
                              all(n.agent for n in cluster.nodes) else None)
            return [emit(Result(s.name, backend, "fail", reason.splitlines()[0]))
                    for s in specs]
        print(f"[{backend}] cluster up in {cluster.startup_seconds:.1f}s "
              f"({len(cluster.nodes)} nodes, {cluster.prefix})", flush=True)
        stopped_by = None
        for i, spec in enumerate(specs, 1):
            if spec.min_nodes > len(cluster.nodes):
                results.append(emit(Result(spec.name, backend, "skipped",
                                           f"needs {spec.min_nodes} nodes")))
                continue
            if stopped_by:
                results.append(emit(Result(spec.name, backend, "skipped",
                                           f"not run after the failure of {stopped_by!r} "
                                           "(--keep-going runs it)")))
                continue
            start = time.monotonic()
            t = Scenario(cluster, spec, i)
            reason = None
            try:
                spec.fn(t)
            except AssertionError as e:
                reason = str(e)
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)
                where = next((f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(tb)
                              if "scenarios_" in f.filename), "")
                reason = f"{type(e).__name__}: {e}" + (f" (at {where})" if where else "")
            dead = _dead_agents(cluster)
            if dead:
                reason = "; ".join(([reason] if reason else []) + dead)
            if reason:
                failure_log.write(backend, spec.name, reason, cluster, t._pods)
            errors = t.cleanup()
            if errors and not reason:
                reason = "cleanup failed: " + "; ".join(errors)
            seconds = time.monotonic() - start
            if reason:
                results.append(emit(Result(spec.name, backend, "fail", reason, seconds)))
                if not args.keep_going:
                    stopped_by = spec.name
                if dead:
                    stopped_by = stopped_by or spec.name
            else:
                results.append(emit(Result(spec.name, backend, "pass", "", seconds)))
        return results
    finally:
        cluster.stop()
        print(f"[{backend}] done in {time.monotonic() - t0:.1f}s", flush=True)


def print_table(results, backends, specs, out=sys.stdout):
    cell = {"pass": "pass", "fail": "FAIL", "skipped": "skip"}
    by = {(r.scenario, r.backend): r for r in results}
    width = max([len("scenario")] + [len(s.name) for s in specs])
    cols = [max(len(b), 4) for b in backends]
    out.write("\n" + "scenario".ljust(width) + "  " +
              "  ".join(b.ljust(c) for b, c in zip(backends, cols)) + "\n")
    out.write("-" * width + "  " + "  ".join("-" * c for c in cols) + "\n")
    for s in specs:
        row = [cell.get(by[(s.name, b)].result, "?") if (s.name, b) in by else "-"
               for b in backends]
        out.write(s.name.ljust(width) + "  " +
                  "  ".join(v.ljust(c) for v, c in zip(row, cols)) + "\n")
    failed = [r for r in results if r.result == "fail"]
    if failed:
        out.write("\nfailures:\n")
        for r in failed:
            out.write(f"  [{r.backend}] {r.scenario}: {r.reason}\n")
    skipped = collections.OrderedDict()
    for r in results:
        if r.result == "skipped":
            skipped.setdefault((r.backend, r.reason), []).append(r.scenario)
    if skipped:
        out.write("\nskipped:\n")
        for (backend, reason), names in skipped.items():
            which = "every scenario" if len(names) == len(specs) else \
                f"{len(names)} scenario(s)"
            out.write(f"  [{backend}] {which}: {reason}\n")
    counts = collections.Counter(r.result for r in results)
    out.write(f"\n{counts['pass']} passed, {counts['fail']} failed, "
              f"{counts['skipped']} skipped\n")


def ensure_built():
    """Builds the binaries when some are missing: scripts/build.sh for <repo>/build, else
    `cmake --build` of SLUICE_BUILD_DIR."""
    bdir = minicluster.build_dir()
    missing = minicluster.missing_binaries(bdir)
    if not missing:
        return bdir
    print(f"conformance: missing {', '.join(missing)}; building", file=sys.stderr, flush=True)
    if os.path.abspath(bdir) == os.path.join(minicluster.REPO, "build"):
        argv = [os.path.join(minicluster.REPO, "scripts", "build.sh")]
    elif os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
        argv = ["cmake", "--build", bdir, f"-j{os.cpu_count() or 1}"]
    else:
        raise SystemExit(f"conformance: {bdir} holds no build; run scripts/build.sh or set "
                         "SLUICE_BUILD_DIR")
    if subprocess.run(argv).returncode != 0 or minicluster.missing_binaries(bdir):
        raise SystemExit(f"conformance: the build did not make "
                         f"{', '.join(minicluster.missing_binaries(bdir))}")
    return bdir


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="e2e/conformance",
        description="Kubernetes network conformance scenarios against a mini-cluster of "
                    "network namespaces running sluice-agent, per backend.")
    ap.add_argument("--backend", action="append", default=[],
                    help=f"one of {', '.join(BACKENDS)}, or iptables for both iptables "
                         "variants (repeatable or comma-separated; default: all)")
    ap.add_argument("--report", help="write one JSON object per scenario and backend here "
                                     "(failures' logs go to REPORT.logs)")
    ap.add_argument("--nodes", type=int, default=3, help="nodes per cluster (default 3)")
    ap.add_argument("-k", action="append", default=[], metavar="SUBSTRING",
                    help="only scenarios whose name contains this (repeatable: any)")
    ap.add_argument("--keep-going", action="store_true",
                    help="run every scenario even after a failure")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)

    asked = [b.strip() for v in args.backend for b in v.split(",") if b.strip()] or \
        list(BACKENDS)
    backends = []
    for b in asked:
        for name in minicluster.BACKEND_ALIASES.get(b, (b,)):
            if name not in backends:
                backends.append(name)
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        ap.error(f"unknown backend {bad[0]!r} (known: {', '.join(BACKENDS)}; "
                 f"iptables = both iptables variants)")
    if not 1 <= args.nodes <= minicluster.MAX_NODES:
        ap.error(f"--nodes must be 1..{minicluster.MAX_NODES}")
    specs = [s for s in load_scenarios()
             if not args.k or any(k.lower() in s.name.lower() for k in args.k)]
    if args.list:
        for s in specs:
            print(f"{s.name}\n    mirrors: {s.mirrors or '-'}")
        return 0
    if not specs:
        ap.error(f"no scenario matches {args.k}")
    if os.geteuid() != 0:
        print("conformance: needs root (network namespaces); nothing ran", file=sys.stderr)
        return 77
    bdir = ensure_built()
    print(f"conformance: binaries from {bdir}; {len(specs)} scenario(s) x "
          f"{', '.join(backends)}", flush=True)
    gone = nstest.sweep(minicluster.STATE_ROOT)
    if gone:
        print(f"conformance: removed {len(gone)} namespace(s) of killed runs", file=sys.stderr)

    report = open(args.report, "w") if args.report else None
    log_path = (args.report + ".logs") if args.report else \
        f"/tmp/sluice-conformance-{time.strftime('%Y%m%d-%H%M%S')}.logs"
    if os.path.exists(log_path):
        os.remove(log_path)
    failure_log = FailureLog(log_path)

    def emit(r):
        mark = {"pass": "pass", "fail": "FAIL", "skipped": "skip"}[r.result]
        line = f"[{r.backend}] {r.scenario}: {mark}"
        if r.result != "skipped" or not r.reason.startswith("backend not implemented"):
            if r.seconds:
                line += f" ({r.seconds:.1f}s)"
            if r.reason and r.result == "fail":
                line += f"\n    {r.reason}"
            print(line, flush=True)
        if report:
            report.write(json.dumps(r.to_json()) + "\n")
            report.flush()
        return r

    results = []
    t0 = time.monotonic()
    try:
        for backend in backends:
            results += run_backend(backend, specs, args, failure_log, emit)
    finally:
        if report:
            report.close()
    print_table(results, backends, specs)
    print(f"total {time.monotonic() - t0:.1f}s")
    if failure_log.written:
        print(f"failure evidence (agent logs, pod requests, rulesets): {failure_log.path}")
    return 1 if any(r.result == "fail" for r in results) else 0


if __name__ == "__main__":
    # Run as the module the scenario files register with, not as a second copy (__main__).
    from cluster import conformance as _self
    sys.exit(_self.main())
