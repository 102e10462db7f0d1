#!/usr/bin/python3
"""Side-by-side latency of two CNI plugin dirs (ours vs the reference), one run.

Each plugin dir gets its own node netns with identical config, pods and
container IDs; a worker process started once inside that node netns
(`ip netns exec <node> python3 cni_bench.py --worker`) forks, execs and waits
for every plugin run and reports the wall time, so `ip netns exec` itself is
never timed. The parent drives both workers and interleaves them per pod
(alternating which goes first) so machine noise hits both alike.

Phases per config: ADD x N, CHECK x N (prevResult = the ADD result), DEL x N
(prevResult too), then K pods released at once through a flock gate for ADD
and again for DEL. Before the configs: VERSION start-up of bridge and
host-local and the exec floor (/bin/true). p99 is nearest rank.

    bench/cni/cni_bench.py [--ours DIR] [--ref DIR] [-n 50] [-k 20] [--json FILE]

Needs root, iproute2, util-linux flock. Never touches the host namespace.
"""

import argparse
import atexit
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREFIX = f"slcb{os.getpid() % 10000}"
GOALS = {"ADD": 0.20, "DEL": 0.35}  # ours/ref median, with ipMasq (reference doc §6)
CONFIGS = {
    "masq": {"ipMasq": True},
    "nomasq": {"ipMasq": False},
}

# ---------------------------------------------------------------------------
# Worker: runs inside a node netns, times plugin processes


def _spawn_timed(argv, env, data):
    t0 = time.perf_counter_ns()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    out, err = p.communicate(data)
    t1 = time.perf_counter_ns()
    return (t1 - t0) / 1e6, p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _env(req):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(req.get("env", {}))
    return env


def worker_main():
    """One JSON request per stdin line, one JSON answer per stdout line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "exec":  # repeated exec of one argv (VERSION, floor)
            data = req.get("stdin", "").encode()
            times, bad = [], []
            for _ in range(req.get("reps", 1)):
                ms, rc, out, err = _spawn_timed(req["argv"], _env(req), data)
                times.append(ms)
                if rc != 0:
                    bad.append((rc, out[:300], err[:300]))
            ans = {"ms": times, "errors": bad[:3], "nerrors": len(bad)}
        elif op == "run":  # one plugin run
            ms, rc, out, err = _spawn_timed(req["argv"], _env(req), req.get("stdin", "").encode())
            ans = {"ms": ms, "rc": rc, "out": out, "err": err[-500:]}
        elif op == "burst":
            ans = _burst(req["items"], req["gate"])
        elif op == "quit":
            break
        else:
            ans = {"error": f"unknown op {op}"}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()


def _burst(items, gate):
    """Start every item behind `flock -s gate`, hold the gate, release it, reap.
    Per-op latency = exit time - release time; wall = last exit - release."""
    import fcntl
    gfd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(gfd, fcntl.LOCK_EX)
    procs = []
    tmp = tempfile.mkdtemp(prefix="burst-")
    try:
        for i, it in enumerate(items):
            outf = open(os.path.join(tmp, f"{i}.out"), "w+b")
            errf = open(os.path.join(tmp, f"{i}.err"), "w+b")
            p = subprocess.Popen(["flock", "-s", gate] + it["argv"], stdin=subprocess.PIPE,
                                 stdout=outf, stderr=errf, env=_env(it))
            p.stdin.write(it.get("stdin", "").encode())
            p.stdin.close()
            procs.append((p, outf, errf))
        time.sleep(0.05 + 0.002 * len(items))  # let every flock block on the gate
        t0 = time.perf_counter_ns()
        fcntl.flock(gfd, fcntl.LOCK_UN)
        done = {}
        pending = {p.pid: i for i, (p, _, _) in enumerate(procs)}
        while pending:
            pid, status = os.wait()
            t = time.perf_counter_ns()
            if pid in pending:
                done[pending.pop(pid)] = ((t - t0) / 1e6, os.waitstatus_to_exitcode(status))
        res = []
        for i, (p, outf, errf) in enumerate(procs):
            p.returncode = done[i][1]
            outf.seek(0)
            errf.seek(0)
            res.append({"ms": done[i][0], "rc": done[i][1],
                        "out": outf.read().decode(errors="replace"),
                        "err": errf.read().decode(errors="replace")[-500:]})
            outf.close()
            errf.close()
        return {"items": res, "wall": max(r["ms"] for r in res)}
    finally:
        os.close(gfd)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Parent: namespaces, configs, phases, report

class Cleanup:
    def __init__(self):
        self.netns = []
        self.dirs = []
        self.procs = []

    def run(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        for n in reversed(self.netns):
            pids = subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True).stdout
            for pid in pids.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.netns.clear()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


CLEANUP = Cleanup()


def _on_signal(signum, _frame):
    CLEANUP.run()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def netns_add(name):
    CLEANUP.netns.append(name)
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
    return name


def netns_del(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    if name in CLEANUP.netns:
        CLEANUP.netns.remove(name)


class Worker:
    def __init__(self, node):
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", node, sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        CLEANUP.procs.append(self.p)

    def ask(self, req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("bench worker died")
        return json.loads(line)

    def close(self):
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            pass


def stats(xs):
    if not xs:
        return {}
    s = sorted(xs)
    return {"n": len(s), "median": statistics.median(s), "p99": s[max(0, math.ceil(0.99 * len(s)) - 1)],
            "max": s[-1], "mean": statistics.fmean(s), "total": sum(s)}


def cid_for(impl_index_free_tag):
    return hashlib.sha256(impl_index_free_tag.encode()).hexdigest()


class Side:
    """One plugin dir: its node netns, worker, data dir, pods and results."""

    def __init__(self, label, plugin_dir, cni_version):
        self.label = label
        self.dir = plugin_dir
        self.cni_version = cni_version
        self.node = netns_add(f"{PREFIX}-{label}-node")
        self.worker = Worker(self.node)
        self.results = {}

    def plugin(self, ptype):
        return os.path.join(self.dir, ptype)

    def env(self, command, cid="", netns="", args=""):
        return {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
                "CNI_IFNAME": "eth0" if cid else "", "CNI_ARGS": args, "CNI_PATH": self.dir}


def make_conf(name, data_dir, cni_version, patch):
    conf = {"cniVersion": cni_version, "name": name, "type": "bridge", "bridge": "cnib0",
            "isGateway": True, "ipMasq": True, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.200.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}}
    conf.update(patch)
    return conf


def kubelet_args(pod, cid):
    uid = hashlib.md5(pod.encode()).hexdigest()
    uid = f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={pod};"
            f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uid}")


def run_config(sides, cfg_name, patch, n, k, errors, burst_reps=4, settle=0.3):
    """Sequential ADD/CHECK/DEL x n interleaved per pod, then bursts of k."""
    pods = {}
    confs = {}
    for s in sides:
        data = tempfile.mkdtemp(prefix=f"{PREFIX}-{s.label}-{cfg_name}-")
        CLEANUP.dirs.append(data)
        confs[s.label] = make_conf("benchnet", data, s.cni_version, patch)
        pods[s.label] = [netns_add(f"{PREFIX}-{s.label}-{cfg_name}-p{i}") for i in range(n + k)]
    res = {s.label: {"ADD": [], "CHECK": [], "DEL": [], "ips": []} for s in sides}
    added = {s.label: {} for s in sides}

    def one(s, command, i):
        pod = pods[s.label][i]
        name = f"pod-{cfg_name}-{i}"
        cid = cid_for(f"{cfg_name}-{i}")
        conf = dict(confs[s.label])
        if command != "ADD" and added[s.label].get(i) is not None:
            conf["prevResult"] = added[s.label][i]
        ans = s.worker.ask({"op": "run", "argv": [s.plugin("bridge")],
                            "env": s.env(command, cid, f"/var/run/netns/{pod}",
                                         kubelet_args(name, cid)),
                            "stdin": json.dumps(conf)})
        if ans["rc"] != 0:
            errors.append(f"{s.label} {cfg_name} {command} pod {i}: exit {ans['rc']} "
                          f"{ans['out'].strip()[:300]} {ans['err'].strip()[:200]}")
        elif command == "ADD":
            try:
                added[s.label][i] = json.loads(ans["out"])
                res[s.label]["ips"] += [x["address"] for x in added[s.label][i].get("ips", [])]
            except ValueError:
                errors.append(f"{s.label} {cfg_name} ADD pod {i}: unparsable result")
        return ans["ms"]

    for command in ("ADD", "CHECK", "DEL"):
        for i in range(n):
            order = sides if i % 2 == 0 else list(reversed(sides))
            for s in order:
                res[s.label][command].append(one(s, command, i))

    # Bursts: k pods released at once, ADD then DEL, `reps` times; who goes first alternates
    # per rep, and a pause before each burst lets the kernel finish the previous one's
    # asynchronous teardown (netns and veth cleanup run in a workqueue).
    for s in sides:
        for key in ("burst ADD", "burst DEL", "burst ADD wall", "burst DEL wall"):
            res[s.label][key] = []
    for rep in range(burst_reps if k else 0):
        order = sides if rep % 2 == 0 else list(reversed(sides))
        for command in ("ADD", "DEL"):
            for s in order:
                time.sleep(settle)
                items = []
                for j in range(n, n + k):
                    pod = pods[s.label][j]
                    cid = cid_for(f"{cfg_name}-{j}")
                    conf = dict(confs[s.label])
                    if command == "DEL" and added[s.label].get(j) is not None:
                        conf["prevResult"] = added[s.label][j]
                    items.append({"argv": [s.plugin("bridge")],
                                  "env": s.env(command, cid, f"/var/run/netns/{pod}",
                                               kubelet_args(f"pod-{cfg_name}-{j}", cid)),
                                  "stdin": json.dumps(conf)})
                gate = os.path.join(CLEANUP.dirs[-1], f"gate-{s.label}-{command}")
                ans = s.worker.ask({"op": "burst", "items": items, "gate": gate})
                for j, it in zip(range(n, n + k), ans["items"]):
                    if it["rc"] != 0:
                        errors.append(f"{s.label} {cfg_name} burst {command} pod {j}: exit "
                                      f"{it['rc']} {it['out'].strip()[:300]}")
                    elif command == "ADD":
                        try:
                            added[s.label][j] = json.loads(it["out"])
                            if rep == 0:
                                res[s.label]["ips"] += [x["address"] for x in added[s.label][j]["ips"]]
                        except (ValueError, KeyError):
                            errors.append(f"{s.label} {cfg_name} burst ADD pod {j}: bad result")
                res[s.label][f"burst {command}"] += [it["ms"] for it in ans["items"]]
                res[s.label][f"burst {command} wall"].append(ans["wall"])

    for s in sides:
        ips = res[s.label]["ips"]
        if len(set(ips)) != len(ips):
            errors.append(f"{s.label} {cfg_name}: duplicate addresses handed out")
        for p in pods[s.label]:
            netns_del(p)
    return res


def startup(sides, reps):
    """VERSION of bridge and host-local and the /bin/true floor, interleaved in chunks."""
    out = {s.label: {"floor": [], "bridge VERSION": [], "host-local VERSION": []} for s in sides}
    chunk = 10
    for c in range(0, reps, chunk):
        order = sides if (c // chunk) % 2 == 0 else list(reversed(sides))
        for s in order:
            r = min(chunk, reps - c)
            out[s.label]["floor"] += s.worker.ask(
                {"op": "exec", "argv": ["/bin/true"], "reps": r})["ms"]
            for p in ("bridge", "host-local"):
                ans = s.worker.ask({"op": "exec", "argv": [s.plugin(p)], "reps": r,
                                    "env": {"CNI_COMMAND": "VERSION"},
                                    "stdin": json.dumps({"cniVersion": s.cni_version})})
                out[s.label][f"{p} VERSION"] += ans["ms"]
    return out


def fmt(x, w=7):
    return f"{x:{w}.2f}" if isinstance(x, (int, float)) else " " * (w - 1) + "-"


def ratio(a, b):
    return a / b if a is not None and b else None


def report(args, sides, start, configs, errors):
    o, r = sides[0].label, sides[1].label
    lines = []
    cpus = os.cpu_count()
    lines.append(f"CNI bench: ours={args.ours}  ref={args.ref}  N={args.n} K={args.k}  "
                 f"cniVersion {args.cni_version}  {cpus} CPUs  kernel {platform.release()}")
    hdr = (f"  {'measure (ms)':<28}{'ours med':>9}{'p99':>8}{'total':>9} |"
           f"{'ref med':>8}{'p99':>8}{'total':>9} |{'ratio med':>10}{'p99':>7}  goal")
    lines.append("")
    lines.append(f"start-up, {args.reps} execs each")
    lines.append(hdr)
    summary = {"startup": {}, "configs": {}}
    for m in ("floor", "bridge VERSION", "host-local VERSION"):
        so, sr = stats(start[o][m]), stats(start[r][m])
        lines.append(_row(m if m != "floor" else "exec floor (/bin/true)", so, sr, None, False))
        summary["startup"][m] = {"ours": so, "ref": sr, "ratio_median": ratio(so["median"], sr["median"])}
    for cfg, res in configs.items():
        lines.append("")
        desc = ("bridge, isGateway, hairpinMode, host-local /24 + default route, kubelet CNI_ARGS, "
                f"ipMasq {'on' if CONFIGS[cfg]['ipMasq'] else 'off'}")
        lines.append(f"config {cfg}: {desc}")
        lines.append(hdr)
        summary["configs"][cfg] = {}
        fo, fr = res[o]["ADD"][0], res[r]["ADD"][0]
        lines.append(f"  {'first ADD (makes the bridge)':<28}{fmt(fo, 9)}{'':>17} |{fmt(fr, 8)}{'':>17} |"
                     f"{fmt(ratio(fo, fr), 9)}x")
        summary["configs"][cfg]["first ADD"] = {"ours": fo, "ref": fr, "ratio": ratio(fo, fr)}
        for m in ("ADD", "CHECK", "DEL", "burst ADD", "burst DEL"):
            if not res[o][m] or not res[r][m]:
                continue
            so, sr = stats(res[o][m]), stats(res[r][m])
            label = (f"{m} sequential x{args.n}" if not m.startswith("burst")
                     else f"{m} x{args.k} per-op ({args.burst_reps}x)")
            # The goals are set for the reference doc's config, which has ipMasq on.
            goal = GOALS.get(m) if CONFIGS[cfg]["ipMasq"] else None
            lines.append(_row(label, so, sr, goal, not m.startswith("burst")))
            summary["configs"][cfg][m] = {"ours": so, "ref": sr,
                                          "ratio_median": ratio(so.get("median"), sr.get("median")),
                                          "goal": goal}
            if m.startswith("burst") and res[o].get(f"{m} wall"):
                wo = statistics.fmean(res[o][f"{m} wall"])
                wr = statistics.fmean(res[r][f"{m} wall"])
                rt = ratio(wo, wr)
                lines.append(f"  {m + ' wall (mean)':<28}{fmt(wo, 9)}{'':>17} |{fmt(wr, 8)}{'':>17} |"
                             f"{fmt(rt, 9)}x")
                summary["configs"][cfg][f"{m} wall"] = {"ours": wo, "ref": wr, "ratio": rt}
    lines.append("")
    if errors:
        lines.append(f"ERRORS ({len(errors)}), timings of failed runs are not meaningful:")
        lines += [f"  {e}" for e in errors[:20]]
    else:
        lines.append("all plugin runs exited 0; addresses distinct")
    return "\n".join(lines), summary


def _row(label, so, sr, goal, show_total):
    rm = ratio(so.get("median"), sr.get("median"))
    rp = ratio(so.get("p99"), sr.get("p99"))
    g = ""
    if goal is not None and rm is not None:
        g = f"<= {goal:.2f}x {'MET' if rm <= goal else 'MISSED'}"
    tot_o = so.get("total") if show_total else None
    tot_r = sr.get("total") if show_total else None
    return (f"  {label:<28}{fmt(so.get('median'), 9)}{fmt(so.get('p99'), 8)}{fmt(tot_o, 9)} |"
            f"{fmt(sr.get('median'), 8)}{fmt(sr.get('p99'), 8)}{fmt(tot_r, 9)} |"
            f"{fmt(rm, 9)}x{fmt(rp, 6)}x  {g}")


def die(msg):
    sys.stderr.write(f"cni_bench: {msg}\n")
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", default=os.path.join(REPO_ROOT, "build", "cni-bin"))
    ap.add_argument("--ref", default="/usr/lib/cni")
    ap.add_argument("-n", type=int, default=50, help="pods, sequential (default 50)")
    ap.add_argument("-k", type=int, default=20, help="pods in each burst (default 20)")
    ap.add_argument("--reps", type=int, default=100, help="VERSION / floor execs (default 100)")
    ap.add_argument("--burst-reps", type=int, default=4,
                    help="bursts per op and dir, first mover alternating (default 4)")
    ap.add_argument("--configs", default="masq,nomasq", help="masq,nomasq (default both)")
    ap.add_argument("--cni-version", default="1.0.0")
    ap.add_argument("--json", metavar="FILE", help="write raw timings and the summary here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main()

    if os.geteuid() != 0:
        die("needs root (network namespaces)")
    for t in ("ip", "flock"):
        if not shutil.which(t):
            die(f"needs {t}")
    args.ours, args.ref = os.path.abspath(args.ours), os.path.abspath(args.ref)
    for d in (args.ours, args.ref):
        for p in ("bridge", "host-local"):
            if not os.access(os.path.join(d, p), os.X_OK):
                die(f"{p} not found in {d}")
    cfgs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in cfgs:
        if c not in CONFIGS:
            die(f"unknown config {c!r} (have {', '.join(CONFIGS)})")
    if not (1 <= args.n <= 250 and 0 <= args.k <= 250):
        die("-n must be 1..250 and -k 0..250 (one /24)")

    atexit.register(CLEANUP.run)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)

    sides = [Side("ours", args.ours, args.cni_version), Side("ref", args.ref, args.cni_version)]
    errors = []
    start = startup(sides, args.reps)
    configs = {}
    for c in cfgs:
        configs[c] = run_config(sides, c, CONFIGS[c], args.n, args.k, errors, args.burst_reps)
    for s in sides:
        s.worker.close()
    text, summary = report(args, sides, start, configs, errors)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "errors": errors,
                       "raw": {"startup": start, "configs": configs}}, f, indent=1)
    CLEANUP.run()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
