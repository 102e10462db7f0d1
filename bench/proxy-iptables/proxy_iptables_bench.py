#!/usr/bin/python3
"""proxy_iptables_bench: sluice-agent's iptables backend against bare iptables-restore.

`sluice-agent --proxy-mode=iptables` writes kube-proxy's iptables layout through
`iptables-restore --noflush`; this puts its sync times next to the bare tool doing the same work,
for iptables-legacy and iptables-nft side by side, at 1,000, 10,000 and 30,000 ClusterIP
Services of 10 endpoints each. Per size and variant:

  1. full sync: the agent's first sync (its "iptables in N us"), median of --runs fresh
     namespaces, against `<variant>-restore --noflush` of the very rules the agent made (read
     back with `<variant>-save`; each bare run right after an agent run) and of the plain
     script's kube-proxy layout (proxy_nftables_bench.kube_proxy_restore_text), each into a
     fresh namespace. The plain text goes first: if the bare tool needs more than --plain-cap
     seconds for it (iptables-nft is quadratic in user space), it is reported as
     "> cap (stopped)"; a full sync past --cap skips the rest of the size for that variant;
     a bare restore of the agent's rules past --cap is reported so, and the namespace for the
     changes gets the same rules in sections of about 1,000 chains instead (timed, on a row of its
     own);
  2. one-endpoint change: --changes times one Service's manifest rewritten with one endpoint
     replaced; the agent's "iptables in N us" for that partial sync (p50, p90), against the bare
     tool doing the same work (the changed Service's KUBE-SVC/KUBE-SEP chains rewritten, the
     replaced endpoint's chain deleted, the shared chains only where they change: not for one
     endpoint) and then running what kube-proxy's partial sync writes for that change (the same
     plus the shared chains KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES,
     KUBE-PROXY-FIREWALL rewritten); both taken from the rules read back before and after the
     agent's sync, in a namespace holding the same full layout;
  3. connection rate: new TCP connections per second to the last Service's ClusterIP through the
     agent's rules, against the same client connecting to one endpoint directly
     (proxy_nftables_bench.connection_rate, sluice-connrate);
  4. the agent's peak RSS.

Everything runs inside network namespaces named slbn<pid>-* (proxy_nftables_bench's scheme),
removed on exit, also after an error or Ctrl-C (`--sweep` removes those of a run that was
SIGKILLed). A benchmark run by hand, never a test; needs root (README.md):

    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
    cmake --build build --target sluice-agent sluice-connrate
    bench/proxy-iptables/proxy_iptables_bench.py [--sizes 1000] [--variants legacy,nft]
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "proxy-nftables"))
import proxy_nftables_bench as pnb  # noqa: E402  (namespaces, workload, agent, connection rate)

alb = pnb.alb
NETNS = pnb.NETNS

VARIANTS = {"legacy": ("iptables-legacy-restore", "iptables-legacy-save"),
            "nft": ("iptables-nft-restore", "iptables-nft-save")}
# kube-proxy's flags (it adds -W 100000, the lock's poll interval).
RESTORE_FLAGS = ["-w", "5", "--noflush", "--counters"]
# Rewritten whole on every sync, full or partial (kube-proxy's iptables proxier does the same).
SHARED_CHAINS = {"filter": ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS",
                            "KUBE-PROXY-FIREWALL"],
                 "nat": ["KUBE-SERVICES", "KUBE-NODEPORTS"]}
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")
HOW = ("full syncs: medians of {a.runs} (once: over {a.slow_once:.0f} s); one-endpoint changes: "
       "{a.changes}; connections/s: medians of {a.conn_rounds} pairs of {a.conn_seconds} s")
GOAL = 1.1  # the goal for ours / bare tool, full sync and one-endpoint change
# Chains per commit when the bare tool fills a namespace with the agent's rules in sections
# (sectioned_restore_text); the agent's iptables-nft nat sections are about this size.
SECTION_CHAINS = 1000
STARTUP_ALLOWANCE = 60.0  # seconds the agent may take reading the manifests before its first sync


def log(message):
    sys.stderr.write(f"proxy_iptables_bench: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------- rules text
# `iptables-save` output read as data, and the partial restore a kube-proxy sync would write for
# the difference between two such readings.

def read_save(text):
    """{table: {chain: (its ":" declaration line or None, [its "-A" lines in order])}}, chains in
    the order they first appear (built-in chains filled without a declaration have None)."""
    tables, chains = {}, None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            chains = tables.setdefault(line[1:], {})
        elif line == "COMMIT":
            chains = None
        elif line.startswith(":"):
            name = line[1:].split()[0]
            chains[name] = (line, chains.get(name, (None, []))[1])
        elif line.startswith("-A "):
            chains.setdefault(line.split()[1], (None, []))[1].append(line)
        else:
            raise RuntimeError(f"unexpected line in iptables-save output: {line[:200]}")
    return tables


def parse_save(text):
    """{table: {chain: [rules]}}: every chain declared or appended to, its "-A" lines in order
    (built-in chains' policies and counters left out)."""
    return {table: {c: rules for c, (_, rules) in chains.items()}
            for table, chains in read_save(text).items()}


def ruleset_size(tables):
    return {"chains": sum(len(c) for c in tables.values()),
            "rules": sum(len(r) for c in tables.values() for r in c.values())}


JUMP = re.compile(r" -[jg] (\S+)")


def change_restore_text(before, after, every_shared_chain=True):
    """`iptables-restore --noflush` text turning `before` into `after` the way kube-proxy's
    partial sync does: per table, the shared chains rewritten whole; every chain of a changed
    Service rewritten (the service chains that differ or are new, and the service chains they
    jump to: a KUBE-SVC- chain's KUBE-SEP- chains); chains gone declared (flushed) and deleted.
    Without `every_shared_chain`, the agent's partial sync: only the shared chains that differ,
    and no section for a table with nothing to write. Returns the text and what it touches
    ("shared": shared chains written; "unexpected": other chains that changed, which no partial
    sync writes)."""
    out, touched = [], {"chains": 0, "rules": 0, "deleted": 0, "shared": 0, "unexpected": []}
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table, {}), after.get(table, {})
        shared = [c for c in SHARED_CHAINS.get(table, [])
                  if c in a and (every_shared_chain or a[c] != b.get(c))]
        touched["unexpected"] += [f"{table} {c}" for c in a if c in b and a[c] != b[c]
                                  and not c.startswith(SERVICE_CHAIN_PREFIXES) and c not in shared]
        changed = [c for c in a if c.startswith(SERVICE_CHAIN_PREFIXES) and a[c] != b.get(c)]
        seen, todo = set(changed), list(changed)
        while todo:
            for rule in a[todo.pop()]:
                m = JUMP.search(rule)
                if m and m.group(1).startswith(SERVICE_CHAIN_PREFIXES) and m.group(1) in a \
                        and m.group(1) not in seen:
                    seen.add(m.group(1))
                    todo.append(m.group(1))
        rewrite = [c for c in a if c in seen]  # in the kernel's order
        gone = [c for c in b if c not in a]
        if not shared and not rewrite and not gone:
            continue
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in shared + rewrite + gone]
        for c in shared + rewrite:
            out += a[c]
        out += [f"-X {c}" for c in gone]
        out.append("COMMIT")
        touched["chains"] += len(rewrite)
        touched["rules"] += sum(len(a[c]) for c in rewrite)
        touched["deleted"] += len(gone)
        touched["shared"] += len(shared)
    return "".join(line + "\n" for line in out), touched


def sectioned_restore_text(text, chains_per_section):
    """The same rules as `text` (iptables-save output) in several commits of about
    `chains_per_section` chains each, as the agent writes iptables-nft's nat table: each chain
    declared and filled in the same commit, jump targets first (depth first from the chains in
    reverse name order: a Service's KUBE-SEP- chains, then its KUBE-SVC- chain; KUBE-SERVICES
    and the built-in chains after what they jump to), so every commit holds and what the last
    one leaves is what one `text` would. (Declaring every chain in a first commit instead took
    5.7 minutes at 30,000 Services, this 71 s: each commit's cost grows with the chains there.)"""
    out = []
    for table, chains in read_save(text).items():
        order, seen = [], set()
        for root in sorted(chains, reverse=True):
            stack = [(root, False)]
            while stack:
                chain, children_done = stack.pop()
                if children_done:
                    order.append(chain)
                    continue
                if chain in seen:
                    continue
                seen.add(chain)
                stack.append((chain, True))
                targets = [m.group(1) for r in chains[chain][1] for m in [JUMP.search(r)] if m]
                stack += [(t, False) for t in reversed(targets) if t in chains and t not in seen]
        for k in range(0, len(order), chains_per_section):
            chunk = order[k:k + chains_per_section]
            out.append(f"*{table}")
            out.extend(chains[c][0] for c in sorted(chunk, reverse=True) if chains[c][0])
            for c in chunk:
                out.extend(chains[c][1])
            out.append("COMMIT")
    return "".join(line + "\n" for line in out)


def save(ns, variant):
    elapsed, r = pnb.timed(ns, [VARIANTS[variant][1]])
    return r.stdout, elapsed


def kernel_variants(ns):
    """Which of legacy and nft hold a nat table in ns, looked at without creating one (running
    the other variant's tool could instantiate an empty table and add its hooks)."""
    legacy = pnb.ns_run(ns, ["cat", "/proc/net/ip_tables_names"], check=False).stdout.split()
    # One chain, not `nft list tables`: nft 1.0.6 fetches every rule for that, and the kernel's
    # rule dump restarts its walk per message (not done after 17 minutes at 30,000 Services).
    nft = pnb.ns_run(ns, ["nft", "list", "chain", "ip", "nat", "PREROUTING"], check=False)
    return {"legacy": "nat" in legacy, "nft": nft.returncode == 0}


# ---------------------------------------------------------------------------------- the agent

# At --v=2 the backend says what each sync ran, just before the sync line.
TOOL_LINE = re.compile(r"\] iptables: (full|partial) sync, (\d+) bytes of restore input, "
                       r"(\d+) tool runs")


class IptablesAgent(pnb.Agent):
    """proxy_nftables_bench's agent harness with --proxy-mode=iptables --iptables-mode=<variant>
    --ip-families <args.ip_families> --v=2; each sync also carries the backend's tool runs and
    restore input bytes."""

    def __init__(self, args, variant, ns, manifests, log_path):
        super().__init__(args, ns, manifests, log_path)
        k = self.argv.index("--proxy-mode=nftables")
        self.argv[k:k + 1] = ["--proxy-mode=iptables", f"--iptables-mode={variant}",
                              "--ip-families", args.ip_families]
        self.argv[self.argv.index("--v=1")] = "--v=2"
        self.tools = None

    def _on_line(self, t, line):
        m = TOOL_LINE.search(line)
        if m:
            self.tools = {"tool_runs": int(m.group(3)), "restore_bytes": int(m.group(2))}
            return False
        with self.cond:
            known = set(self.syncs)
        done = super()._on_line(t, line)
        with self.cond:
            for n in set(self.syncs) - known:
                self.syncs[n].update(self.tools or {})
                self.tools = None
        return done


def sync_figures(sync):
    return {"iptables_us": sync["backend_us"], "nodestate_us": sync["nodestate_us"],
            "services_changed": sync["services"], "trigger": sync["trigger"],
            "full": sync["trigger"].endswith(", full"), "backend": sync["backend"],
            "tool_runs": sync.get("tool_runs"), "restore_bytes": sync.get("restore_bytes")}


# ---------------------------------------------------------------------------------- phases

class Stopped(Exception):
    """A run went past --cap and was stopped; args[0] is the stage ("plain", "agent",
    "agent-rules")."""


def bare_restore(args, variant, text_path, role, keep_last=False, count=None, first=0, cap=None):
    """`<variant>-restore --noflush` of text_path into fresh namespaces, `count` (--runs) times
    (once when a run takes over --slow-once). Raises Stopped past --cap. Returns the times (ms)
    and the last namespace when keep_last (deleted otherwise)."""
    tool = VARIANTS[variant][0]
    count = args.runs if count is None else count
    cap = args.cap if cap is None else cap
    runs, ns = [], None
    for r in range(first, first + count):
        if ns:
            NETNS.delete(ns)
        pnb.settle(args.settle)
        ns = NETNS.add(f"{variant}-{role}{r}")
        try:
            s, _ = pnb.timed(ns, [tool] + RESTORE_FLAGS, text_path, timeout=cap)
        except subprocess.TimeoutExpired:
            NETNS.delete(ns)
            log(f"  {tool} of {role}: no exit within {cap:.0f} s; stopped")
            raise Stopped(role)
        except RuntimeError:
            NETNS.delete(ns)
            raise
        runs.append(s * 1000)
        log(f"  {tool} of {role} {r + 1}/{first + count}: {s * 1000:,.0f} ms")
        if s > args.slow_once:
            log(f"  over {args.slow_once:.0f} s: measured once")
            break
    if not keep_last:
        NETNS.delete(ns)
        ns = None
    return runs, ns


def agent_full_sync(args, variant, manifests, work, r):
    """An agent in a fresh node netns until its first sync; returns its figures and the agent,
    still running (with its netns)."""
    pnb.settle(args.settle)
    ns = NETNS.add(f"{variant}-node{r}")
    agent = IptablesAgent(args, variant, ns, manifests,
                          os.path.join(work, f"agent-{variant}{r}.log")).start()
    try:
        first = agent.wait_sync(1, args.cap + STARTUP_ALLOWANCE)
    except RuntimeError as e:
        agent.stop()
        NETNS.delete(ns)
        if "no sync 1 within" in str(e):
            log(f"  the agent's first sync: not within {args.cap + STARTUP_ALLOWANCE:.0f} s "
                "of its start; stopped")
            raise Stopped("agent") from e
        raise
    run = sync_figures(first)
    run["start_to_sync_ms"] = (first["t"] - agent.t0) * 1000
    log(f"  full sync {r + 1}/{args.runs}: {first['backend']} in "
        f"{first['backend_us'] / 1000:,.1f} ms, NodeState in {first['nodestate_us'] / 1000:.1f}"
        f" ms, start to sync line {run['start_to_sync_ms']:,.0f} ms ({first['services']} "
        f"services; {run['tool_runs']} tool runs, {(run['restore_bytes'] or 0) / 1e6:.1f} MB "
        "restore input)")
    if not first["backend"].startswith("iptables"):
        agent.stop()
        raise RuntimeError(f"the agent's backend is {first['backend']!r}, not iptables")
    if not run["full"]:
        log(f"  warning: the agent's first sync is not marked full: {first['line']}")
    return run, agent


def full_sync_rounds(args, variant, manifests, work, res, ref):
    """--runs rounds, each the agent's first sync into a fresh namespace and then the bare tool
    restoring the agent's rules (read back from the first agent) into another: alternated, so
    that the machine's drift (a shared VM's speed wanders by tens of percent over minutes) reaches
    both alike. Fills res; returns the last agent (running, for the changes and the connection
    rate), the bare tool's last namespace (for the changes) and the rules read back, the last two
    None when they could not be read back or restored within the cap. Raises Stopped when the
    agent's first sync does not come within the cap. When this variant's save fails (
    iptables-nft-save 1.8.9 dies on 320,000 rules) and `ref` holds another variant's read-back
    of the same Services, the bare tool restores that (the rules are the same: the layout does
    not depend on the variant)."""
    res["full_sync"], res["agent_text_restore_ms"] = [], []
    agent_path = os.path.join(work, f"agent-{variant}.iptables")
    agent = peer = initial = None
    for r in range(args.runs):
        if agent:
            agent.stop()
            NETNS.delete(agent.ns)
        if peer:
            NETNS.delete(peer)
            peer = None
        run, agent = agent_full_sync(args, variant, manifests, work, r)
        res["full_sync"].append(run)
        if r == 0:
            where = kernel_variants(agent.ns)
            if not where[variant] or any(v for k, v in where.items() if k != variant):
                agent.stop()
                raise RuntimeError(f"--iptables-mode={variant}: the agent's nat table is in "
                                   f"{where}")
            alb.wait_until_idle(agent.proc.pid, at_least=0.5, quiet=0.3)
            try:
                text, save_s = save(agent.ns, variant)
            except RuntimeError as e:
                # iptables-nft-save 1.8.9 dies of SIGSEGV on the 320,000 rules of 10,000
                # Services: the rest needs the rules read back.
                res["read_back_error"] = str(e)[:300]
                log(f"  {variant}: reading the agent's rules back failed ({str(e)[:200]})")
                if not ref:
                    res["stopped"] = "read-back"
                    return agent, None, None
                res["read_back_from"] = ref["variant"]
                log(f"  {variant}: the bare tool restores the {ref['variant']} run's read-back "
                    "of the same Services instead; the changes too")
                with open(ref["agent_path"]) as f:
                    text = f.read()
                save_s = float("nan")
            with open(agent_path, "w") as f:
                f.write(text)
            initial = parse_save(text)
            res["agent_ruleset"] = dict(ruleset_size(initial), bytes=len(text),
                                        save_ms=save_s * 1000)
            log(f"  the agent's rules: {res['agent_ruleset']['rules']:,} rules in "
                f"{res['agent_ruleset']['chains']:,} chains, {len(text) / 1e6:.1f} MB, "
                f"{VARIANTS[variant][1]} {save_s * 1000:,.0f} ms")
        try:
            times, peer = bare_restore(args, variant, agent_path, "agent-rules", keep_last=True,
                                       count=1, first=r)
        except Stopped as e:
            res["stopped"] = e.args[0]
            peer = sectioned_peer(args, variant, agent_path, res)
            break
        res["agent_text_restore_ms"] += times
        if run["iptables_us"] / 1e6 > args.slow_once or times[0] / 1000 > args.slow_once:
            log(f"  over {args.slow_once:.0f} s: measured once")
            break
    if peer is None:
        return agent, None, None
    if not res.get("read_back_from"):
        key = "agent_sections_same_rules" if res.get("stopped") else "agent_text_same_rules"
        res[key] = same_rules(peer, variant, initial)
        if res[key] is False:
            log(f"  warning: {VARIANTS[variant][0]} of the agent's rules did not reproduce them")
    return agent, peer, initial


def sectioned_peer(args, variant, agent_path, res):
    """After the bare restore of the agent's rules went past --cap: the namespace for the
    one-endpoint changes filled with the same rules in sections of about SECTION_CHAINS chains
    (sectioned_restore_text), timed and reported on a row of its own; None past --cap too."""
    path = agent_path + ".sections"
    with open(agent_path) as f:
        text = sectioned_restore_text(f.read(), SECTION_CHAINS)
    with open(path, "w") as f:
        f.write(text)
    log(f"  {variant}: the changes' namespace gets the agent's rules in sections of about "
        f"{SECTION_CHAINS:,} chains ({text.count(chr(10) + 'COMMIT')} commits)")
    try:
        times, peer = bare_restore(args, variant, path, "agent-rules-sections", keep_last=True,
                                   count=1)
    except Stopped:
        return None
    res["agent_sections_restore_ms"] = times
    return peer


def same_rules(ns, variant, expected):
    """Whether the rules read back from ns are `expected`; None when they cannot be read back
    (iptables-nft-save 1.8.9 dies of SIGSEGV on some large tables: its chain sort recurses once
    per chain on chains created in name order, as a restore of iptables-save's text creates
    them)."""
    try:
        loaded, _ = save(ns, variant)
    except RuntimeError as e:
        log(f"  reading the bare tool's rules back failed ({str(e)[:200]}): not compared")
        return None
    return parse_save(loaded) == expected


def endpoint_changes(args, size, variant, manifests, agent, state, work, peer, ref_changes=None):
    """--changes one-endpoint changes, one at a time: the agent's partial sync and, from the
    rules read back before and after it, the restore text of the same partial sync, which the
    bare tool then runs in `peer` (holding the same rules) right away, so that each pair is
    measured under the same conditions. With `ref_changes` (another variant's changes, the same
    ones: the picks depend on the size only) their restore texts are used and nothing is read
    back. Two bare texts per change: the agent's work (the shared chains only where they change,
    none for one endpoint), the pair's peer, and then kube-proxy's (every shared chain rewritten
    as well). Returns the agent's figures (each with the kube-proxy text's time), the bare times
    (ms) of the agent's work and the final rules (None then)."""
    tool = VARIANTS[variant][0]
    bare_ms = []
    rng = random.Random(size)
    picks = rng.sample(range(size - 1), min(args.changes, size - 1))
    results = []
    for k, i in enumerate(picks):
        ips = pnb.endpoint_ips(i, size)
        j = rng.randrange(pnb.ENDPOINTS)
        old = ips[j]
        while ips[j] in ips[:j] + ips[j + 1:] or ips[j] == old:
            ips[j] = pnb.pod_ip(rng.randrange(pnb.POD_POOL))
        # Each side of the pair starts on an idle machine: nf_tables frees a replaced chain's
        # rules in a kernel worker after the tool exits, so without this the agent's change
        # would share the CPUs with the end of the previous bare run.
        pnb.settle(args.settle)
        want = agent.last_sync() + 1
        t = time.monotonic()
        pnb.write_manifest(manifests, i, ips)
        sync = agent.wait_sync(want, args.cap)
        e2e_ms = (sync["t"] - t) * 1000
        time.sleep(0.05)
        if agent.last_sync() != want:
            log(f"  change {k + 1}: more than one sync followed it "
                f"({agent.last_sync() - want + 1})")
        if ref_changes:
            ref = ref_changes[k]
            if ref["service"] != pnb.service_name(i) or ref["endpoint"] != f"{old} -> {ips[j]}":
                raise RuntimeError(f"change {k + 1} is not the reference run's: {ref['service']} "
                                   f"{ref['endpoint']}")
            path, kp_path = ref["restore_text"], ref["kube_proxy_text"]
            touched, save_s = ref["touched"], float("nan")
        else:
            text, save_s = save(agent.ns, variant)
            after = parse_save(text)
            path = os.path.join(work, f"change-{variant}{k:02d}.iptables")
            kp_path = os.path.join(work, f"change-{variant}{k:02d}-kube-proxy.iptables")
            tx, touched = change_restore_text(state, after, every_shared_chain=False)
            with open(path, "w") as f:
                f.write(tx)
            with open(kp_path, "w") as f:
                f.write(change_restore_text(state, after)[0])
            state = after
        pnb.settle(args.settle)
        s, _ = pnb.timed(peer, [tool] + RESTORE_FLAGS, path, timeout=args.cap)
        bare_ms.append(s * 1000)
        pnb.settle(args.settle)
        s, _ = pnb.timed(peer, [tool] + RESTORE_FLAGS, kp_path, timeout=args.cap)
        figures = sync_figures(sync)
        figures.update({"service": pnb.service_name(i), "endpoint": f"{old} -> {ips[j]}",
                        "write_to_sync_ms": e2e_ms, "restore_text": path,
                        "kube_proxy_text": kp_path, "kube_proxy_text_ms": s * 1000,
                        "touched": touched, "save_s": save_s})
        results.append(figures)
        log(f"  change {k + 1}/{len(picks)} {pnb.service_name(i)} {old} -> {ips[j]}: "
            f"{sync['backend']} in {sync['backend_us']:,} us{' (full!)' if figures['full'] else ''}"
            f" ({figures['tool_runs']} tool runs, {figures['restore_bytes']} bytes)"
            f", write to sync line {e2e_ms:.1f} ms; the same as restore text: "
            f"{touched['chains']} chains, {touched['rules']} rules, {touched['deleted']} deleted, "
            f"{touched['shared']} shared; {tool} of it {bare_ms[-1]:.1f} ms, of kube-proxy's "
            f"text {figures['kube_proxy_text_ms']:.1f} ms")
        if figures["full"]:
            log(f"  warning: change {k + 1} made a full sync: {sync['line']}")
        if touched["unexpected"]:
            log(f"  warning: change {k + 1} also changed {', '.join(touched['unexpected'])}, "
                "which no partial sync writes")
        if touched["chains"] == 0:
            raise RuntimeError(f"change {k + 1} ({pnb.service_name(i)}: {old} -> {ips[j]}) left "
                               f"the rules as they were: {sync['line']}")
    return results, bare_ms, state


def bench_variant(args, size, variant, manifests, plain_path, work, res, ref=None):
    """One variant at one size; fills res as it goes. `ref`: an earlier variant's read-back at
    this size (see full_sync_rounds); returns this one's when it has one."""
    tool = VARIANTS[variant][0]
    res["idle_before_runs"] = pnb.IDLE_SAMPLES = []  # pnb.settle's samples

    # 1a. The bare tool on the plain script's layout: also the probe for --cap.
    try:
        res["plain_restore_ms"], _ = bare_restore(args, variant, plain_path, "plain",
                                                  cap=args.plain_cap)
    except Stopped as e:
        # The plain text's chains are in kube-proxy's order, which iptables-nft-restore handles
        # quadratically; ours (and the agent's rules read back) are declared in name order, so
        # the rest is still measured, each run under the same cap.
        res["plain_stopped"] = True
        log(f"  {variant}: plain text past the cap; the agent and its rules are still measured")

    # 1b, 1c. Our full sync and the bare tool on the agent's own rules, alternated.
    try:
        agent, peer, initial = full_sync_rounds(args, variant, manifests, work, res, ref)
    except Stopped as e:
        res["stopped"] = e.args[0]
        log(f"  {variant}: the rest of {size:,} Services skipped")
        return res
    if peer is None:
        log(f"  {variant}: the rest of {size:,} Services skipped")
        agent.stop()
        NETNS.delete(agent.ns)
        return res

    # 2. Our one-endpoint changes, and the bare tool doing each right after the agent.
    borrowed = res.get("read_back_from")
    res["changes"], res["bare_change_ms"], final = endpoint_changes(
        args, size, variant, manifests, agent, initial, work, peer,
        ref["changes"] if borrowed else None)

    # 3. Connection rate, through this agent's rules.
    extra_ns = []
    if args.conn_rounds:
        res["connections"], extra_ns = pnb.connection_rate(args, size, agent.ns)

    # 4. Peak memory, after all of the above.
    status = alb.proc_status(agent.proc.pid)
    res["agent_memory_kb"] = {"VmHWM": status["VmHWM"], "VmRSS": status["VmRSS"]}
    res["agent_cpu_s"] = alb.proc_cpu_seconds(agent.proc.pid)
    agent.stop()
    NETNS.delete(agent.ns, *extra_ns)

    if not borrowed:
        res["bare_changes_same_rules"] = same_rules(peer, variant, final)
        if res["bare_changes_same_rules"] is False:
            log("  warning: after the bare partial restores the rules differ from the agent's")
    log(f"  {tool} of the same changes: p50 {med(res['bare_change_ms']):.1f} ms, "
        f"p90 {pct(res['bare_change_ms'], 90):.1f} ms; of kube-proxy's texts for them: p50 "
        f"{med([c['kube_proxy_text_ms'] for c in res['changes']]):.1f} ms")
    NETNS.delete(peer)
    return res


def bench_size(args, size, work, res):
    log(f"{size:,} Services x {pnb.ENDPOINTS} endpoints")
    manifests = os.path.join(work, "manifests")
    plain_path = os.path.join(work, "kube-proxy.iptables")
    text = pnb.kube_proxy_restore_text(size)
    with open(plain_path, "w") as f:
        f.write(text)
    res.update({"services": size, "endpoints_per_service": pnb.ENDPOINTS,
                "plain_ruleset": {"rules": text.count("\n-A "), "chains": text.count("\n:"),
                                  "bytes": len(text)},
                "variants": {}})
    ref = None  # the first variant's read-back and changes, for a variant that cannot read back
    for variant in args.variants:
        # Each variant starts from the original manifests (the changes rewrote some).
        shutil.rmtree(manifests, ignore_errors=True)
        t = time.monotonic()
        pnb.write_manifests(manifests, size)
        log(f"  {variant}: {size:,} manifest files written in {time.monotonic() - t:.1f} s")
        res["variants"][variant] = v = {}
        bench_variant(args, size, variant, manifests, plain_path, work, v, ref)
        if not ref and v.get("changes") and not v.get("read_back_from"):
            ref = {"variant": variant, "changes": v["changes"],
                   "agent_path": os.path.join(work, f"agent-{variant}.iptables")}
    shutil.rmtree(manifests, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------- report

pct = pnb.pct
med = pnb.med
ms = pnb.ms


def ratio(a, b):
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def goal(a, b):
    if a is None or not b:
        return ""
    return " ok" if a / b <= GOAL else " OVER"


def paired(ours, bare):
    """The median of ours[i] / bare[i]: each bare run follows the agent's run it is paired with,
    so this ratio is the one least moved by the machine's drift."""
    pairs = [a / b for a, b in zip(ours, bare) if b]
    return f"{med(pairs):.2f}x ({len(pairs)})" if pairs else "-"


def variant_rows(res, args):
    """(label, value) per figure of one variant at one size, in the report's order. A figure
    not measured says why: "> cap (stopped)" for the stage that went past --cap, "skipped" for
    those after it."""
    stopped = res.get("stopped")
    cap = f"> {args.cap:.0f} s (stopped)"

    def missing(stage):
        if stage == "plain" and res.get("plain_stopped"):
            return f"> {args.plain_cap:.0f} s (stopped)"
        return cap if stopped == stage else "skipped"

    def once(runs):
        return " (once)" if runs and len(runs) < args.runs else ""

    def times(key, stage):
        return ms(med(res[key])) if res.get(key) else missing(stage)

    full = res.get("full_sync", [])
    ours = med([r["iptables_us"] / 1000 for r in full]) if full else None
    agent_bare = med(res.get("agent_text_restore_ms", []))
    plain = med(res.get("plain_restore_ms", []))
    rows = [("full sync, sluice", ms(ours) + once(full) if full else missing("agent")),
            ("bare restore, the agent's rules", times("agent_text_restore_ms", "agent-rules")
             + once(res.get("agent_text_restore_ms"))),
            ("  sluice / bare", ratio(ours, agent_bare) + goal(ours, agent_bare)),
            ("  sluice / bare, median of the paired runs",
             paired([r["iptables_us"] / 1000 for r in full],
                    res.get("agent_text_restore_ms", []))),
            ("bare restore, plain kube-proxy text", times("plain_restore_ms", "plain")
             + once(res.get("plain_restore_ms"))),
            ("  sluice / bare (plain text)", ratio(ours, plain))]
    if res.get("agent_sections_restore_ms"):
        # Only when the bare restore above was stopped: how the changes' namespace was filled.
        rows.append(("bare restore, the agent's rules in sections",
                     ms(med(res["agent_sections_restore_ms"])) + " (once)"))
    ch = res.get("changes", [])
    ours_ch = [c["iptables_us"] / 1000 for c in ch]
    bare_ch = res.get("bare_change_ms", [])

    def p50_p90(v):
        return f"{ms(med(v))} / {ms(pct(v, 90))}" if v else "skipped"

    def vs(p):
        a, b = ((med(ours_ch), med(bare_ch)) if p == 50 else (pct(ours_ch, p), pct(bare_ch, p)))
        return ratio(a, b) + goal(a, b)

    rows += [("one-endpoint change, sluice p50 / p90", p50_p90(ours_ch)),
             ("bare restore of the same, p50 / p90", p50_p90(bare_ch)),
             ("  sluice / bare, p50 / p90", f"{vs(50)} / {vs(90)}" if ch and bare_ch else "-"),
             ("  sluice / bare, median of the paired changes", paired(ours_ch, bare_ch)),
             ("bare restore of kube-proxy's partial text, p50 / p90",
              p50_p90([c["kube_proxy_text_ms"] for c in ch])),
             ("  sluice / bare (kube-proxy's text), p50",
              ratio(med(ours_ch), med([c["kube_proxy_text_ms"] for c in ch])) if ch else "-"),
             ("  file write to sync line, p50 / p90",
              p50_p90([c["write_to_sync_ms"] for c in ch]))]
    conn = res.get("connections")
    if conn:
        d = med([r["per_second"] for r in conn["direct"]])
        s = med([r["per_second"] for r in conn["service"]])
        rows.append(("connections/s ClusterIP / direct",
                     f"{s:,.0f} / {d:,.0f} ({ratio(s, d)})"))
        if conn["service_masqueraded"]:
            sm = conn["service_masqueraded"][0]["per_second"]
            do = conn["direct_outside"][0]["per_second"]
            rows.append(("  client outside the CIDR (1 run)", f"{sm:,.0f} / {do:,.0f} "
                         f"({ratio(sm, do)})"))
    elif args.conn_rounds:
        rows.append(("connections/s ClusterIP / direct", "skipped"))
    mem = res.get("agent_memory_kb")
    rows.append(("agent peak RSS", f"{mem['VmHWM'] / 1024:.1f} MB" if mem else "-"))
    rows.append(("agent start to first sync line",
                 ms(med([r["start_to_sync_ms"] for r in full])) if full else "-"))
    runs = [r["tool_runs"] for r in full] + [c["tool_runs"] for c in ch]
    if full and None not in runs:
        rows.append(("agent tool runs, full sync / change",
                     f"{full[-1]['tool_runs']} / "
                     + (f"{med([c['tool_runs'] for c in ch]):g}" if ch else "-")))
    return rows


def report(res, args):
    n = res["services"]
    p = res["plain_ruleset"]
    print(f"\n{n:,} Services x {res['endpoints_per_service']} endpoints (plain kube-proxy text: "
          f"{p['rules']:,} rules in {p['chains']:,} chains); {HOW.format(a=args)}")
    columns = {v: dict(variant_rows(r, args)) for v, r in res["variants"].items()}
    labels = []
    for v, r in res["variants"].items():
        for label, _ in variant_rows(r, args):
            if label not in labels:
                labels.append(label)
    heads = [VARIANTS[v][0].rsplit("-", 1)[0] for v in columns]
    w0 = max(len(l) for l in labels)
    widths = [max([len(h)] + [len(c.get(l, "")) for l in labels])
              for h, c in zip(heads, columns.values())]
    print(f"  {'':{w0}}" + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths)))
    for l in labels:
        print(f"  {l:{w0}}" + "".join(f"  {c.get(l, ''):>{w}}"
                                      for c, w in zip(columns.values(), widths)))
    for v, r in res["variants"].items():
        if r.get("read_back_from"):
            print(f"  {v}: the agent's rules could not be read back ({r['read_back_error'][:120]}"
                  f"); the bare rows restore the {r['read_back_from']} run's read-back of the same "
                  f"Services and its change texts (the same changes), and are not checked against "
                  "the agent's rules")
        elif "agent_ruleset" in r:
            a = r["agent_ruleset"]
            print(f"  {v}: the agent's rules read back: {a['rules']:,} rules in {a['chains']:,} "
                  f"chains, {a['bytes'] / 1e6:.1f} MB")
        for key, what in (("agent_text_same_rules", "the bare restore of the agent's rules"),
                          ("agent_sections_same_rules",
                           "the bare restore of the agent's rules in sections"),
                          ("bare_changes_same_rules", "the bare partial restores")):
            if key in r and r[key] is False:
                print(f"  {v}: note: {what} did not end with the agent's rules")
            elif key in r and r[key] is None:
                print(f"  {v}: note: {what} could not be read back, so were not compared")
        touched = {(c["touched"]["chains"], c["touched"]["rules"], c["touched"]["deleted"],
                    c["touched"]["shared"]) for c in r.get("changes", [])}
        unexpected = sorted({u for c in r.get("changes", []) for u in c["touched"]["unexpected"]})
        if unexpected:
            print(f"  {v}: note: a one-endpoint change also changed {', '.join(unexpected)}")
        if touched:
            print(f"  {v}: a one-endpoint change rewrote (service chains, their rules, chains "
                  "deleted, shared chains): " + ", ".join(str(t) for t in sorted(touched))
                  + "; kube-proxy's text rewrites every shared chain too")
        full = [c for c in r.get("changes", []) if c["full"]]
        if full:
            print(f"  {v}: note: {len(full)} of the changes made a full sync")
        idle = r.get("idle_before_runs")
        if idle:
            print(f"  {v}: CPU idle before the timed runs: median {med(idle):.0%}, lowest "
                  f"{min(idle):.0%} (below 85%: something else ran on the machine)")
    sys.stdout.flush()


def summary(results, args):
    """All sizes side by side, as a Markdown table (README.md's shape)."""
    heads, cells = [], {}
    for res in results:
        for v in args.variants:
            if v not in res.get("variants", {}):
                continue
            h = f"{res['services']:,} {v}"
            heads.append(h)
            for label, value in variant_rows(res["variants"][v], args):
                cells.setdefault(label, {})[h] = value
    if not heads:
        return
    print("\n| | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for label, row in cells.items():
        print(f"| {label.strip()} | " + " | ".join(row.get(h, "") for h in heads) + " |")
    sys.stdout.flush()


def write_json(args, meta, results):
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "sizes": results}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_agent = os.environ.get("SLUICE_AGENT",
                                   os.path.join(ROOT, "build", "agent", "sluice-agent"))
    ap.add_argument("--agent", default=default_agent,
                    help="sluice-agent, a Release build (default: $SLUICE_AGENT or %(default)s)")
    ap.add_argument("--connrate", default=os.environ.get("SLUICE_CONNRATE"),
                    help="sluice-connrate (default: $SLUICE_CONNRATE or "
                    "<the agent's build dir>/bench/proxy-nftables/sluice-connrate)")
    ap.add_argument("--sizes", default="1000,10000,30000",
                    help="Service counts, comma-separated (default %(default)s)")
    ap.add_argument("--variants", default="legacy,nft",
                    help="iptables variants, comma-separated (default %(default)s)")
    ap.add_argument("--runs", type=int, default=3,
                    help="full syncs per size, variant and tool (median; default %(default)s)")
    ap.add_argument("--cap", type=float, default=120.0,
                    help="seconds any one tool run or full sync may take before it is stopped; "
                    "a stopped full sync skips the rest of that size for that variant; past it, "
                    "the bare restore of the agent's rules is redone in sections to fill the "
                    "namespace for the changes (default %(default)s)")
    ap.add_argument("--plain-cap", type=float,
                    help="the same for the bare restore of the plain text, which is only "
                    "reported as \"> cap (stopped)\" (default: --cap)")
    ap.add_argument("--slow-once", type=float, default=30.0,
                    help="a full-sync run longer than this many seconds is not repeated "
                    "(default %(default)s)")
    ap.add_argument("--ip-families", default="ipv4",
                    help="the agent's --ip-families (default %(default)s: the Services are IPv4 "
                    "single-stack and the bare tool restores IPv4 only)")
    ap.add_argument("--changes", type=int, default=10, help="one-endpoint changes (default 10)")
    ap.add_argument("--conn-rounds", type=int, default=3, help="direct/service pairs (0: none)")
    ap.add_argument("--conn-seconds", type=int, default=3)
    ap.add_argument("--conn-parallel", type=int, default=2, help="client threads")
    ap.add_argument("--conn-server-threads", type=int, default=2)
    ap.add_argument("--no-conn-masqueraded", dest="conn_masqueraded", action="store_false",
                    help="skip the run with the client outside the cluster CIDR")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds to wait at most for an idle machine before each timed run")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (rules read "
                    "back, partial restore texts, kube-proxy's text, agent logs)")
    ap.add_argument("--sweep", action="store_true",
                    help="only delete namespaces left by earlier runs that were SIGKILLed")
    args = ap.parse_args()
    # As the agent does for iptables-nft: iptables-nft-save 1.8.9 overflows an 8 MB stack on
    # ~100,000 chains created in name order (the bare tool's namespaces hold such).
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 512 << 20 if hard == resource.RLIM_INFINITY else min(hard, 512 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces)")
    if args.plain_cap is None:
        args.plain_cap = args.cap
    if args.sweep:
        gone = pnb.sweep()
        log(f"deleted {len(gone)} namespaces: {' '.join(gone)}" if gone else "nothing to delete")
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.variants = [v for v in args.variants.split(",") if v]
    if not sizes or min(sizes) < 2 or args.runs < 1 or args.changes < 1:
        ap.error("each size must be at least 2, --runs and --changes at least 1")
    if not args.variants or any(v not in VARIANTS for v in args.variants):
        ap.error(f"--variants: one or more of {', '.join(VARIANTS)}")
    build = os.path.dirname(os.path.dirname(os.path.abspath(args.agent)))
    if args.connrate is None:
        args.connrate = os.path.join(build, "bench", "proxy-nftables", "sluice-connrate")
    for path, target in ((args.agent, "sluice-agent"), (args.connrate, "sluice-connrate")):
        if not os.access(path, os.X_OK):
            ap.error(f"no {path}: build it with `cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "
                     f"&& cmake --build build --target {target}` or pass its path")
    build_type = alb.build_type(build)
    if build_type not in ("Release", "RelWithDebInfo"):
        log(f"warning: {args.agent} is a {build_type} build: its figures mean little")
    for tool in ["nft"] + [t for v in args.variants for t in VARIANTS[v]]:
        if not shutil.which(tool):
            ap.error(f"{tool} is not installed")

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    work = tempfile.mkdtemp(prefix="sluice-proxy-iptables-bench-")
    meta = {"agent": args.agent, "build_type": build_type, "cpus": os.cpu_count(),
            "kernel": os.uname().release, "loadavg_at_start": os.getloadavg(),
            "iptables": subprocess.run(["iptables-legacy", "--version"], capture_output=True,
                                       text=True).stdout.strip(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    log(f"agent {args.agent} ({build_type}); {os.cpu_count()} CPUs, load {meta['loadavg_at_start']}"
        f"; {meta['iptables']}; cap {args.cap:.0f} s; work dir {work}")
    results = []
    try:
        for size in sizes:
            d = os.path.join(work, str(size))
            os.makedirs(d)
            t = time.monotonic()
            results.append({})
            bench_size(args, size, d, results[-1])
            results[-1]["bench_seconds"] = time.monotonic() - t
            report(results[-1], args)
            write_json(args, meta, results)
        summary(results, args)
        return 0
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        if results:
            results[-1]["error"] = f"interrupted ({e or 'Ctrl-C'})"
        return 130
    except RuntimeError as e:
        log(f"error: {e}")
        if results:
            results[-1]["error"] = str(e)
        return 1
    finally:
        pnb.cleanup()
        write_json(args, meta, results)
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
