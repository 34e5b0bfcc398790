#!/usr/bin/env bash
# A real network split, over real sockets: two network namespaces joined by a veth pair, three
# node processes (examples/node.rs) in each, all broadcasting. The link is cut long enough for
# SWIM on each side to declare the other side dead, then restored. Passes if every node delivered
# exactly once every broadcast sent from two seconds after it started (a node is not sent what
# was broadcast before it joined), the ones sent during the cut included. Nodes stop
# broadcasting ten seconds before they stop.
#
#   sudo chaos/split.sh            # as root; about two minutes
#
# Everything it makes (two namespaces, a veth pair, the node processes) is removed on exit,
# also on failure or Ctrl-C. Addresses are 10.199.0.1 and 10.199.0.2, inside the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

CUT=${CUT:-35}          # seconds the link stays down
BEFORE=${BEFORE:-8}     # seconds of normal operation before the cut
AFTER=${AFTER:-30}      # seconds after the heal
RATE=${RATE:-2}         # broadcasts per second per node
FLAGS=${FLAGS:-}        # more flags for every node, e.g. "--no-anti-entropy --no-reconnect"

[ "$(id -u)" = 0 ] || { echo "chaos/split.sh: needs root (network namespaces)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "chaos/split.sh: needs python3 for the report" >&2; exit 1; }
cargo build --release --example node >&2
NODE=$PWD/target/release/examples/node

tag=$$
A=plt-a-$tag B=plt-b-$tag VA=pa$tag VB=pb$tag
OUT=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$A"
ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"
ip link set "$VB" netns "$B"
ip -n "$A" addr add 10.199.0.1/24 dev "$VA"
ip -n "$B" addr add 10.199.0.2/24 dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up
ip -n "$B" link set "$VB" up

total=$((BEFORE + CUT + AFTER))
for id in 1 2 3 4 5 6; do
  if [ "$id" -le 3 ]; then ns=$A ip=10.199.0.1; else ns=$B ip=10.199.0.2; fi
  seed=()
  [ "$id" = 1 ] || seed=(--seed 10.199.0.1:7001)
  # The first node starts alone; the others join through it.
  ip netns exec "$ns" "$NODE" --id "$id" --bind "$ip:700$id" "${seed[@]}" --preset default \
    --rate "$RATE" --send-for $((total - 10)) --duration "$total" $FLAGS \
    >"$OUT/$id.jsonl" 2>"$OUT/$id.err" &
  pids+=($!)
  [ "$id" = 1 ] && sleep 0.5
done

sleep "$BEFORE"
echo "cutting the link for ${CUT}s" >&2
ip -n "$A" link set "$VA" down
sleep "$CUT"
echo "restoring the link" >&2
ip -n "$A" link set "$VA" up
for pid in "${pids[@]}"; do wait "$pid" || { echo "a node failed: see $OUT" >&2; exit 1; }; done
pids=()

python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
sent, start, seen, dups = {}, {}, {}, 0
for f in sorted(out.glob("*.jsonl")):
    node = int(f.stem)
    got = set()
    for line in f.read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "start":
            start[node] = e["at_us"]
        elif e["event"] == "sent":
            sent[(node, e["seq"])] = e["at_us"]
        elif e["event"] == "deliver":
            got.add((e["origin"], e["seq"]))
            dups += e["times"] > 1
    seen[node] = got
missing = {}
for node, got in seen.items():
    owed = {m for m, at in sent.items() if at >= start[node] + 2_000_000}
    if owed - got:
        missing[node] = sorted(owed - got)
print(f"{len(sent)} broadcasts, {len(seen)} nodes; duplicates {dups}; "
      f"missing at {len(missing)} nodes: {sum(len(m) for m in missing.values())}")
for node, m in missing.items():
    print(f"  node {node} misses {len(m)}: {m[:10]}{' ...' if len(m) > 10 else ''}")
sys.exit(1 if missing or dups else 0)
PY
