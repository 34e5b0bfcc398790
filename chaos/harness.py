#!/usr/bin/env python3
"""A cluster of node processes across real sockets, under injected network faults.

Creates one network namespace per node (default 10), each joined by a veth pair to a bridge
inside a namespace of its own, so nothing outside the namespaces it made is touched. Runs
examples/node.rs in every node namespace, injects the faults of each scenario on a schedule,
collects the JSON lines the nodes write and prints a table: deliveries owed to live nodes and
made, duplicates, messages never delivered (listed), latency p50/p99/max, time to re-merge.

    sudo python3 chaos/harness.py                      # scenarios a to e, about 6 minutes
    sudo python3 chaos/harness.py --short              # a to c with shorter phases (CI)
    sudo python3 chaos/harness.py --scenarios c,d      # some of them
    sudo python3 chaos/harness.py --scenarios c --node-flags=--no-anti-entropy   # must fail

Faults: loss is an nftables rule in every node namespace (`numgen random mod 100 < P drop` on
arriving packets, so P per link crossed); a partition is a drop rule on the other side's
addresses; a slow link is a tbf qdisc on both ends of a node's veth pair; a crash is SIGKILL.
The kernel has no netem, so there is no added delay. Needs root, iproute2 and nftables.

What a live node must deliver (the check that fails the run): every message sent after it
started, by any node that was alive at the end, and every message of a killed node that some
live node delivered; with `--node-flags="--topic T:A-B ..."`, a message on topic T only to the
nodes A to B. Exit status 0 only if every scenario run passed.

Every namespace, link and bridge is removed on exit, also on failure or Ctrl-C, and each
scenario is bounded in time: nodes stop themselves (`--duration`), and are killed if they
have not stopped 30 s later.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "pltc"  # every namespace this harness makes starts with it
SUBNET = "10.213.0"  # a private /24, inside the namespaces only
MEMBERLIST_PORT = 7000
QUIC_PORT = 7100
PROCESSES = []  # every node process started, so that none outlives the harness


def sh(*cmd, check=True, stdin=None):
    """Runs a command; returns its stdout. Raises with its stderr when it fails."""
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def now_us():
    return time.time_ns() // 1000


class Network:
    """N node namespaces on one bridge; loss, partitions and rate limits on demand."""

    def __init__(self, nodes):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.hub = f"{self.tag}h"
        self.nodes = list(range(1, nodes + 1))
        self.loss = 0
        self.cut = None  # (side a, side b) while partitioned

    def ns(self, i):
        return f"{self.tag}n{i}"

    @staticmethod
    def addr(i):
        return f"{SUBNET}.{i}"

    def create(self):
        sh("ip", "netns", "add", self.hub)
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i in self.nodes:
            ns = self.ns(i)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", self.hub, "link", "add", f"h{i}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.hub, "link", "set", f"h{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            self.rules(i)

    def destroy(self):
        for name in [self.ns(i) for i in self.nodes] + [self.hub]:
            sh("ip", "netns", "del", name, check=False)

    def rules(self, i):
        """Writes node i's whole ruleset: what arrives from a cut-off address or loses the
        draw is dropped."""
        drops = []
        if self.cut:
            other = self.cut[1] if i in self.cut[0] else self.cut[0]
            drops.append(f"ip saddr {{ {', '.join(self.addr(j) for j in other)} }} drop")
        if self.loss:
            drops.append(f"numgen random mod 100 < {self.loss} drop")
        script = "flush ruleset\ntable inet chaos {\n chain input {\n" \
                 "  type filter hook input priority 0; policy accept;\n  iif lo accept\n" \
                 + "".join(f"  {d}\n" for d in drops) + " }\n}\n"
        sh("ip", "netns", "exec", self.ns(i), "nft", "-f", "-", stdin=script)

    def set_loss(self, percent):
        self.loss = percent
        for i in self.nodes:
            self.rules(i)

    def partition(self, a, b):
        self.cut = (a, b)
        for i in self.nodes:
            self.rules(i)

    def heal(self):
        self.cut = None
        for i in self.nodes:
            self.rules(i)

    def tcp_retransmits(self):
        """Segments and SYNs that TCP sent again, summed over the node namespaces: the kernel's
        own counters (/proc/net/snmp and /proc/net/netstat are per namespace)."""
        total = 0
        for i in self.nodes:
            for path, group, names in (("/proc/net/snmp", "Tcp:", ("RetransSegs",)),
                                       ("/proc/net/netstat", "TcpExt:", ("TCPSynRetrans",))):
                lines = [line.split() for line in sh("ip", "netns", "exec", self.ns(i),
                                                     "cat", path).splitlines()
                         if line.startswith(group)]
                if len(lines) >= 2:
                    row = dict(zip(lines[0][1:], lines[1][1:]))
                    total += sum(int(row.get(n, 0)) for n in names)
        return total

    def rate_limit(self, i, rate):
        """A slow link to and from node i: tbf on both ends of its veth pair."""
        for ns, dev in ((self.ns(i), "eth0"), (self.hub, f"h{i}")):
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
               "rate", rate, "burst", "32kb", "latency", "400ms")


def remove_leftovers():
    """Namespaces of an earlier run of this harness whose process is gone."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        made = re.fullmatch(rf"{PREFIX}(\d+)(h|n\d+)", line.split(" ")[0])
        if made and not Path(f"/proc/{made.group(1)}").exists():
            sh("ip", "netns", "del", made.group(0), check=False)


@dataclass
class Run:
    """One node process: its id, which start of that id it is, and its output."""
    id: int
    start_no: int
    out: Path
    proc: subprocess.Popen = None
    killed: bool = False


@dataclass
class Scenario:
    name: str
    title: str
    send: float  # seconds of broadcasting
    drain: float  # seconds after the last broadcast before the nodes stop
    loss: int = 0
    quic: bool = False
    schedule: list = field(default_factory=list)  # (at seconds, what, args)
    slow: list = field(default_factory=list)  # node ids behind a rate-limited link


class Cluster:
    """Starts and stops the node processes of one scenario."""

    def __init__(self, net, node_bin, out_dir, scenario, rate, certs, flags):
        self.net, self.node_bin, self.out, self.flags = net, node_bin, out_dir, flags
        self.scenario, self.rate, self.certs = scenario, rate, certs
        self.runs = []
        self.t0 = None

    def start(self, i, send_for, duration):
        starts = sum(1 for r in self.runs if r.id == i)
        run = Run(i, starts, self.out / f"{i}.{starts}.jsonl")
        cmd = ["ip", "netns", "exec", self.net.ns(i), str(self.node_bin),
               "--id", str(i), "--bind", f"{Network.addr(i)}:{MEMBERLIST_PORT}",
               "--rate", str(self.rate), "--send-for", f"{max(send_for, 0):.1f}",
               "--duration", f"{duration:.1f}", "--preset", "lan"]
        cmd += self.flags
        if i != 1:
            cmd += ["--seed", f"{Network.addr(1)}:{MEMBERLIST_PORT}"]
        if self.scenario.quic:
            c = self.certs
            cmd += ["--quic", f"{Network.addr(i)}:{QUIC_PORT}", "--ca", str(c / "ca.pem"),
                    "--cert", str(c / f"{i}.pem"), "--key", str(c / f"{i}.key")]
        err = open(self.out / f"{i}.{starts}.err", "w")
        run.proc = subprocess.Popen(cmd, stdout=open(run.out, "w"), stderr=err)
        PROCESSES.append(run.proc)
        self.runs.append(run)
        return run

    def kill(self, i):
        for run in self.runs:
            if run.id == i and run.proc.poll() is None:
                run.proc.send_signal(signal.SIGKILL)
                run.proc.wait()
                run.killed = True

    def stop_all(self, wait):
        deadline = time.monotonic() + wait
        for run in self.runs:
            left = max(deadline - time.monotonic(), 0.1)
            try:
                run.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                run.proc.send_signal(signal.SIGKILL)
                run.proc.wait()
                run.killed = True
                print(f"  node {run.id} did not stop in time: killed", file=sys.stderr)


def execute(net, node_bin, out_dir, scenario, rate, certs, flags):
    """Runs one scenario; returns the harness's own timeline (event name -> wall time, us)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        old.unlink()
    net.set_loss(0)
    net.heal()
    for i in scenario.slow:
        net.rate_limit(i, "1mbit")
    cluster = Cluster(net, node_bin, out_dir, scenario, rate, certs, flags)
    warm = 3.0
    total = warm + scenario.send + scenario.drain
    timeline = {}
    cluster.t0 = time.monotonic()
    # Latency counts broadcasts sent from here on: the first ones, sent while the nodes were
    # still joining, reach the later nodes only by anti-entropy, a second or more later.
    timeline["steady"] = now_us() + int(warm * 1e6)
    cluster.start(1, warm + scenario.send, total)
    time.sleep(0.5)
    for i in net.nodes[1:]:
        cluster.start(i, warm + scenario.send - 0.5, total - 0.5)
    net.set_loss(scenario.loss)
    for at, what, arg in sorted(scenario.schedule, key=lambda s: s[0]):
        time.sleep(max(cluster.t0 + warm + at - time.monotonic(), 0))
        timeline[what if what not in timeline else f"{what} {arg}"] = now_us()
        if what == "kill":
            for i in arg:
                cluster.kill(i)
        elif what == "restart":
            elapsed = time.monotonic() - cluster.t0
            for i in arg:
                cluster.start(i, warm + scenario.send - elapsed, total - elapsed)
        elif what == "cut":
            net.partition(*arg)
        elif what == "heal":
            net.heal()
        print(f"  {time.monotonic() - cluster.t0:5.1f} s: {what} {arg}", file=sys.stderr)
    cluster.stop_all(max(cluster.t0 + total + 30 - time.monotonic(), 1))
    return cluster.runs, timeline


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(int(len(values) * p / 100), len(values) - 1)]


def topic_members(flags):
    """The topics the nodes' flags make (`--topic T:A-B`): topic -> the ids that join it."""
    members = {}
    for flag, value in zip(flags, flags[1:]):
        if flag == "--topic":
            topic, ids = value.split(":")
            first, last = ids.split("-")
            members[int(topic)] = range(int(first), int(last) + 1)
    return members


def analyse(runs, timeline, nodes, topics=None):
    """What each live node was owed, what it got, and the figures of the table. A broadcast
    on a topic (`topics`: topic -> ids in it) is owed to the topic's members only."""
    topics = topics or {}
    sent, starts, got, members = {}, {}, {}, {}
    duplicates, gaps, latencies, slow_lat = 0, 0, [], {}
    repaired = {"grafts_sent": 0, "repairs_received": 0, "frames_dropped": 0}
    remote = []  # (receiver, id, latency) of every delivery of another node's broadcast
    for run in runs:
        key = (run.id, run.start_no)
        got[key] = set()
        members[key] = []
        lines = run.out.read_text().splitlines() if run.out.exists() else []
        for line in lines:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a killed node's last line may be cut short
            kind = e["event"]
            if kind == "start":
                starts[key] = e["at_us"]
            elif kind == "sent":
                sent[(e.get("topic", 0), e["id"])] = (key, e["at_us"])
            elif kind == "deliver":
                mid = (e.get("topic", 0), e["id"])
                got[key].add(mid)
                duplicates += e["times"] > 1
                if e["origin"] != run.id:
                    remote.append((run.id, mid, e["latency_us"]))
            elif kind == "gap":
                gaps += e["count"]
            elif kind == "summary":
                for what in repaired:
                    repaired[what] += e.get(what, 0)
            elif kind == "members":
                members[key].append((e["at_us"], e["count"]))
    for node, mid, us in remote:
        if sent.get(mid, (None, timeline["steady"]))[1] >= timeline["steady"]:
            latencies.append(us)
            slow_lat.setdefault(node, []).append(us)
    live = {(r.id, r.start_no) for r in runs if not r.killed}
    delivered_live = set().union(*(got[k] for k in live)) if live else set()
    owed_total, missing = 0, []
    for key in sorted(live):
        if key not in starts:
            missing.append((key, "never started"))
            continue
        for mid, (origin, at) in sent.items():
            if at < starts[key]:
                continue
            if mid[0] and key[0] not in topics.get(mid[0], ()):
                continue  # a topic this node is not in
            if origin not in live and mid not in delivered_live:
                continue  # a killed node's message that no live node has: may never have left
            owed_total += 1
            if mid not in got[key]:
                on = f" on topic {mid[0]}" if mid[0] else ""
                missing.append((key, f"{mid[1]}{on} from node {origin[0]}"))
    remerge = None
    if "heal" in timeline:
        heal, times = timeline["heal"], []
        for key in live:
            whole = [at for at, count in members[key] if at >= heal and count == len(nodes)]
            times.append(whole[0] - heal if whole else None)
        remerge = None if None in times else max(times, default=0)
    return {
        "broadcasts": len(sent),
        "owed": owed_total,
        "missing": missing,
        "duplicates": duplicates,
        "gaps": gaps,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=None),
        "late": sum(1 for us in latencies if us > 100_000),
        "remerge": remerge,
        "by_node": slow_lat,
        **repaired,
    }


def ms(us):
    return "-" if us is None else f"{us / 1000:.1f}"


def scenarios(short, nodes):
    half = len(nodes) // 2
    a_side, b_side = nodes[:half], nodes[half:]
    send = 20 if short else 60
    return {
        "a": Scenario("a", "steady, 1% loss on every link", send, 10, loss=1),
        "b": Scenario("b", "kill -9 of two nodes, one restarted with the same id",
                      30 if short else 60, 10,
                      schedule=[(8, "kill", nodes[-2:]), (14, "restart", nodes[-1:])]),
        "c": Scenario("c", "20 s partition into two halves, then heal",
                      35 if short else 50, 15,
                      schedule=[(5, "cut", (a_side, b_side)), (25, "heal", ())]),
        "d": Scenario("d", "10% loss on every link, 1 mbit/s links to two nodes",
                      30 if short else 60, 20, loss=10, slow=nodes[-2:]),
        "e": Scenario("e", "as (a), frames over QUIC with mutual TLS", send, 10, loss=1,
                      quic=True),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--scenarios", default=None, help="e.g. a,c (default: all; --short: a,b,c)")
    parser.add_argument("--short", action="store_true", help="a to c with shorter phases (CI)")
    parser.add_argument("--rate", type=int, default=5, help="broadcasts per second per node")
    parser.add_argument("--node", type=Path, default=None,
                        help="the node binary (default: build examples/node.rs in release)")
    parser.add_argument("--node-flags", default="",
                        help="more flags for every node, e.g. --no-anti-entropy")
    parser.add_argument("--out", type=Path, default=Path("target/chaos"),
                        help="where the nodes' JSON lines are kept")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    os.chdir(repo)

    if os.geteuid() != 0:
        sys.exit("chaos/harness.py: FAILED: needs root to create network namespaces")
    for tool in ("ip", "nft", "tc"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"chaos/harness.py: FAILED: {tool} is missing (Debian: iproute2, nftables)")
    if not 2 <= args.nodes <= 200:
        sys.exit("chaos/harness.py: --nodes must be from 2 to 200")
    nodes = list(range(1, args.nodes + 1))
    chosen = scenarios(args.short, nodes)
    names = (args.scenarios or ("a,b,c" if args.short else "a,b,c,d,e")).split(",")
    if any(n not in chosen for n in names):
        sys.exit(f"chaos/harness.py: --scenarios takes letters from {','.join(chosen)}")

    node_bin = args.node
    if node_bin is None:
        subprocess.run(["cargo", "build", "--release", "--example", "node",
                        "--features", "memberlist,metrics,quic"], check=True)
        node_bin = repo / "target/release/examples/node"
    node_bin = node_bin.resolve()
    certs = None
    if any(chosen[n].quic for n in names):
        certs = (args.out / "certs").resolve()
        sh(str(node_bin), "--make-certs", str(certs), "--ids", str(args.nodes))

    remove_leftovers()
    net = Network(args.nodes)
    # Ctrl-C and SIGTERM unwind through the finally below, which removes the namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("chaos/harness.py: terminated"))
    results = {}
    try:
        try:
            net.create()
        except RuntimeError as e:
            sys.exit(f"chaos/harness.py: FAILED: cannot create network namespaces here ({e})")
        for name in names:
            s = chosen[name]
            print(f"scenario ({name}): {s.title}", file=sys.stderr)
            runs, timeline = execute(net, node_bin, args.out / name, s, args.rate, certs,
                                     args.node_flags.split())
            results[name] = analyse(runs, timeline, nodes,
                                    topic_members(args.node_flags.split()))
            results[name]["tcp_retransmits"] = net.tcp_retransmits()
            net.destroy()
            net = Network(args.nodes)
            net.create()
    finally:
        for proc in PROCESSES:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        net.destroy()

    print(f"\n{args.nodes} nodes, {args.rate} broadcasts/s each; latency in ms, of the "
          f"broadcasts sent after the first 3 s; output in {args.out}/")
    print("| scenario | broadcasts | owed to live nodes | delivered | missing | duplicates "
          "| gaps reported | p50 | p99 | max | over 100 ms | re-merge (s) "
          "| grafts | repairs | TCP retransmits |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for name in names:
        r = results[name]
        got = r["owed"] - len(r["missing"])
        remerge = "-" if "heal" not in [w for at, w, _ in chosen[name].schedule] else (
            "never" if r["remerge"] is None else f"{r['remerge'] / 1e6:.1f}")
        print(f"| ({name}) {chosen[name].title} | {r['broadcasts']} | {r['owed']} | {got} "
              f"| {len(r['missing'])} | {r['duplicates']} | {r['gaps']} | {ms(r['p50'])} "
              f"| {ms(r['p99'])} | {ms(r['max'])} | {r['late']} | {remerge} | {r['grafts_sent']} "
              f"| {r['repairs_received']} | {r['tcp_retransmits']} |")
        failed |= bool(r["missing"]) or r["duplicates"] > 0 or remerge == "never"
    for name in names:
        r, s = results[name], chosen[name]
        for (node, start_no), what in r["missing"][:20]:
            print(f"  ({name}) node {node} (start {start_no}) never delivered {what}")
        if len(r["missing"]) > 20:
            print(f"  ({name}) ... and {len(r['missing']) - 20} more")
        for i in s.slow:
            lat = r["by_node"].get(i, [])
            print(f"  ({name}) node {i} behind the slow link: p50 {ms(percentile(lat, 50))}, "
                  f"p99 {ms(percentile(lat, 99))}, max {ms(max(lat, default=None))} ms")
    print("PASSED" if not failed else "FAILED: a live node missed or repeated a message")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
