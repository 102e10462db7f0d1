#!/usr/bin/python3
"""controlplane_bench: sluice-agent's control plane against the test API server. 10,000 Services
and their EndpointSlices (10 endpoints each) are served over HTTPS; the agent runs with --dry-run
(so no backend cost is counted) and the bench reports:

  * start to complete NodeState: from starting the process to its first sync (which waits for
    every informer's first listing) having computed NodeState for every Service;
  * one-endpoint change to NodeState, over N changes (p50, p99): each change is one EndpointSlice
    replaced through the API (one endpoint flips between ready and terminating), timed
    - inside the agent: from the change reaching ClusterState (the informer delivered it) to the
      NodeState being updated (the agent's --v=1 sync line), and
    - end to end: from sending the PUT to reading the agent's dry-run line for that sync (the
      Python test server's own handling and the watch event's trip are in this one);
  * the agent's peak RSS (VmHWM) and CPU time.

A benchmark run by hand, never a test:
    bench/controlplane/controlplane_bench.py [--agent build/agent/sluice-agent] [--changes 1000]
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "apiclient"))
import api_list_bench as alb  # noqa: E402  (the workload, the server and process helpers)

NODE = "node-7"  # one of the 97 nodes the workload's endpoints run on


def log(message):
    sys.stderr.write(f"controlplane_bench: {message}\n")
    sys.stderr.flush()


def write_store(path, services, endpoints_per_slice):
    """The server's store: the workload's Services and slices, plus this agent's Node."""
    rv = 1000
    node = {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": NODE, "uid": "node-7-uid", "resourceVersion": str(rv),
                         "labels": {"kubernetes.io/hostname": NODE,
                                    "topology.kubernetes.io/zone": "zone-b"}},
            "spec": {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.7"}]}}
    with open(path, "w") as f:
        f.write('{"objects": {"nodes": [' + json.dumps(node) + '], "services": [')
        for i in range(services):
            rv += 1
            obj = alb.service_object(i)
            obj["metadata"]["resourceVersion"] = str(rv)
            f.write(("," if i else "") + json.dumps(obj, separators=(",", ":")))
        f.write('], "endpointslices": [')
        for i in range(services):
            rv += 1
            obj = alb.slice_object(i, endpoints_per_slice)
            obj["metadata"]["resourceVersion"] = str(rv)
            f.write(("," if i else "") + json.dumps(obj, separators=(",", ":")))
        f.write(f']}}, "resourceVersion": {rv}}}')


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


SYNC_LINE = re.compile(r"\] sync (\d+) \(([a-z]+)(?:, full)?\): (\d+) services changed; NodeState "
                       r"in (\d+) us(?:, (\d+) us after the first change)?")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", default=os.path.join(ROOT, "build", "agent", "sluice-agent"))
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--show-log", action="store_true", help="print the agent's start-up log")
    args = ap.parse_args()
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"controlplane_bench: {args.agent} is not built (scripts/build.sh)")

    children = alb.Children()
    tmp = tempfile.mkdtemp(prefix="sluice-cpbench-")
    try:
        log(f"writing {args.services} Services and slices x{args.endpoints} endpoints")
        state_dir = os.path.join(tmp, "state")
        os.makedirs(state_dir)
        write_store(os.path.join(state_dir, "store.json"), args.services, args.endpoints)
        server = alb.ApiServer(children, args.python, state_dir,
                               os.path.join(tmp, "server.log")).start()
        log(f"test API server at {server.info['url']}")

        # The agent's --v=1 line per sync: sync number -> (monotonic time it was read, NodeState
        # us, us from the first change reaching ClusterState to NodeState updated).
        syncs = {}
        def on_err(t, line):
            m = SYNC_LINE.search(line)
            if m:
                syncs[int(m.group(1))] = (t, int(m.group(4)),
                                          int(m.group(5)) if m.group(5) else None)
                return True
            return False

        server_cpu0 = alb.proc_cpu_seconds(server.proc.pid)
        t0 = time.monotonic()
        agent = children.spawn(
            [args.agent, "--kubeconfig", server.kubeconfig, "--hostname-override", NODE,
             "--dry-run", "--min-sync-period=0", "--sync-period=10m", "--v=1",
             "--healthz-bind-address=127.0.0.1:0", "--metrics-bind-address=127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # stdout carries the dry-run listing (10,000 lines on the first sync): read and dropped.
        out = alb.LineReader(agent.stdout, lambda t, line: True)
        err = alb.LineReader(agent.stderr, on_err)
        out.start()
        err.start()
        while 1 not in syncs:
            if agent.poll() is not None:
                raise RuntimeError("the agent exited:\n" +
                                   "\n".join(l for _, l in err.lines[-10:]))
            if time.monotonic() - t0 > 300:
                raise RuntimeError("no first sync within 300 s")
            time.sleep(0.001)
        start_to_state = syncs[1][0] - t0
        server_cpu_start = alb.proc_cpu_seconds(server.proc.pid) - server_cpu0
        agent_cpu_start = alb.proc_cpu_seconds(agent.pid)
        if args.show_log:
            for t, line in list(err.lines)[:40]:
                log(f"  +{(t - t0) * 1000:7.1f} ms  {line}")
        log(f"first sync after {start_to_state * 1000:.0f} ms (NodeState in {syncs[1][1] / 1000:.1f} ms)")
        hwm_start = alb.proc_status(agent.pid)["VmHWM"]
        alb.wait_until_idle(agent.pid, at_least=1.0, quiet=0.5)

        rng = random.Random(7)
        conn = server.connection()
        e2e, inside = [], []
        for k in range(args.changes):
            i = rng.randrange(args.services)
            s = alb.changed_slice(i, args.endpoints, k + 1)
            md = s["metadata"]
            path = (f"/apis/discovery.k8s.io/v1/namespaces/{md['namespace']}/endpointslices/"
                    f"{md['name']}")
            want = max(syncs) + 1
            t = time.monotonic()
            server.request(conn, "PUT", path, json.dumps(s))
            while want not in syncs:
                if time.monotonic() - t > 30:
                    raise RuntimeError(f"change {k}: no sync within 30 s")
                time.sleep(0.0002)
            e2e.append((syncs[want][0] - t) * 1000)
            if syncs[want][2] is not None:
                inside.append(syncs[want][2] / 1000)
        conn.close()
        status = alb.proc_status(agent.pid)
        cpu = alb.proc_cpu_seconds(agent.pid)
        children.end(agent)
        out.join()
        err.join()

        print(f"control plane, {args.services} Services + {args.services} EndpointSlices "
              f"x{args.endpoints} endpoints, sluice-agent --dry-run, one run")
        print(f"  start to complete NodeState     {start_to_state * 1000:9.0f} ms   (goal < 1000 ms)")
        if inside:
            print(f"  CPU until then: agent {agent_cpu_start:.2f} s, test API server "
              f"{server_cpu_start:.2f} s (2 cores shared)")
        print(f"  one-endpoint change -> NodeState, inside the agent ({len(inside)} changes): "
                  f"p50 {statistics.median(inside):.3f} ms  p99 {pct(inside, 99):.3f} ms  "
                  f"(goal < 1 ms)")
        print(f"  one-endpoint change, PUT -> agent's sync line ({len(e2e)} changes): "
              f"p50 {statistics.median(e2e):.2f} ms  p99 {pct(e2e, 99):.2f} ms")
        print(f"  agent peak RSS (VmHWM)          {status['VmHWM'] / 1024:9.1f} MB   "
              f"(at first sync {hwm_start / 1024:.1f} MB; goal < 100 MB)")
        print(f"  agent RSS at the end            {status['VmRSS'] / 1024:9.1f} MB")
        print(f"  agent CPU time                  {cpu:9.2f} s")
    finally:
        children.end_all()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
