#!/usr/bin/env bash
# Issue 13's DNS benchmark: dnsperf against the agent's DNS view and against knotd serving the same records
# from a static zone, one UDP worker each, in one run. Prints a table (BENCHMARKS.md, "Issue 13: DNS").
#   bench/dns_bench.sh <build dir> [seconds per run]
# Everything lives in a temp dir: a throwaway etcd and knotd on free loopback ports, started and stopped by
# PID. Two services are asked: `big` (10,000 instances: every UDP answer is truncated) and `small` (3).
set -euo pipefail

BUILD_DIR=${1:-build}
SECONDS_PER_RUN=${2:-10}
AGENT=$(realpath "$BUILD_DIR/etcd-sidecar")
INSTANCES=10000
WORK=$(mktemp -d /tmp/dns-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ETCD_PORT=$(free_port); PEER_PORT=$(free_port); DNS_PORT=$(free_port); KNOT_PORT=$(free_port)

etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --max-txn-ops 2000 >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
export ETCDCTL_API=3
ETCDCTL=(etcdctl --endpoints "127.0.0.1:$ETCD_PORT")
for _ in $(seq 50); do "${ETCDCTL[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

# The same records for both servers: instance i at 10.<i/65536>.<i/256%256>.<i%256>.
python3 - "$WORK" "$INSTANCES" <<'EOF'
import sys
work, n = sys.argv[1], int(sys.argv[2])
def ip(i): return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
small = [("s1", "10.200.0.1"), ("s2", "10.200.0.2"), ("s3", "10.200.0.3")]
with open(f"{work}/txns", "w") as t:
    for start in range(0, n, 1000):
        t.write("\n\n")  # no compares
        for i in range(start, min(n, start + 1000)):
            t.write(f'put /services/big/i{i} {{"address":"{ip(i + 1)}","port":8080}}\n')
        t.write("\n\n")  # no failure ops
with open(f"{work}/small.txn", "w") as t:
    t.write("\n")
    for id_, a in small:
        t.write(f'put /services/small/{id_} {{"address":"{a}","port":8080}}\n')
    t.write("\n\n")
with open(f"{work}/sidecar.zone", "w") as z:
    z.write("$ORIGIN sidecar.\n$TTL 5\n@ SOA ns hostmaster 1 3600 600 86400 5\n@ NS ns\nns A 127.0.0.1\n")
    for i in range(n):
        z.write(f"big.service A {ip(i + 1)}\n")
    for _, a in small:
        z.write(f"small.service A {a}\n")
with open(f"{work}/big.q", "w") as q: q.write("big.service.sidecar. A\n")
with open(f"{work}/small.q", "w") as q: q.write("small.service.sidecar. A\n")
EOF
# etcdctl txn reads blocks separated by blank lines: compares, success ops, failure ops.
python3 - "$WORK" <<'EOF'
import sys
work = sys.argv[1]
lines = open(f"{work}/txns").read().split("\n\n\n\n")
for k, block in enumerate(b for b in lines if b.strip()):
    open(f"{work}/txn{k}", "w").write("\n" + block.strip("\n") + "\n\n\n")
EOF
for f in "$WORK"/txn[0-9]* "$WORK/small.txn"; do "${ETCDCTL[@]}" txn <"$f" >/dev/null; done

cat >"$WORK/agent.yaml" <<EOF
etcd:
  endpoints: ["http://127.0.0.1:$ETCD_PORT"]
admin:
  enabled: false
dns:
  listen: "127.0.0.1:$DNS_PORT"
EOF
"$AGENT" --manifest "$WORK/agent.yaml" >"$WORK/agent.log" 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$WORK/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: sidecar.
    file: "$WORK/sidecar.zone"
EOF
knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
PIDS+=($!)

ready() { dig @127.0.0.1 -p "$1" +norec +time=1 +tries=1 +ignore "$2" A | grep -q "status: NOERROR"; }
for _ in $(seq 100); do ready "$DNS_PORT" big.service.sidecar. && ready "$DNS_PORT" small.service.sidecar. && break; sleep 0.1; done
for _ in $(seq 100); do ready "$KNOT_PORT" big.service.sidecar. && break; sleep 0.1; done

# qps at the maximum rate (one dnsperf client, 100 outstanding queries).
max_qps() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$SECONDS_PER_RUN" -c 1 -q 100 2>/dev/null |
    awk '/Queries per second/ {printf "%d", $4}'
}
# p99 latency (ms) at a fixed rate, from dnsperf's per-query report.
p99_at() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$SECONDS_PER_RUN" -c 1 -Q "$3" -v 2>/dev/null |
    awk '/^> / {print $NF}' | sort -g | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", v[i]*1000}'
}
answers() { dig @127.0.0.1 -p "$1" +norec +ignore +noedns "$2" A | sed -n 's/.*ANSWER: \([0-9]*\),.*/\1/p'; }

printf '%-8s %-30s %10s %10s %8s %14s %10s\n' server service answers max_qps ratio "half_rate_qps" p99_ms
for svc in big small; do
  k=$(max_qps "$KNOT_PORT" "$WORK/$svc.q")
  a=$(max_qps "$DNS_PORT" "$WORK/$svc.q")
  half=$((a / 2))
  ka=$(answers "$KNOT_PORT" "$svc.service.sidecar.")
  aa=$(answers "$DNS_PORT" "$svc.service.sidecar.")
  kp=$(p99_at "$KNOT_PORT" "$WORK/$svc.q" "$half")
  ap=$(p99_at "$DNS_PORT" "$WORK/$svc.q" "$half")
  ratio=$(python3 -c "print(f'{$a / max($k, 1):.2f}')")
  printf '%-8s %-30s %10s %10s %8s %14s %10s\n' knotd "$svc ($([ $svc = big ] && echo $INSTANCES || echo 3) inst.)" "$ka" "$k" 1.00 "$half" "$kp"
  printf '%-8s %-30s %10s %10s %8s %14s %10s\n' agent "$svc ($([ $svc = big ] && echo $INSTANCES || echo 3) inst.)" "$aa" "$a" "$ratio" "$half" "$ap"
done
echo "targets: agent >= 0.50 of knotd's qps; agent p99 <= 1 ms at half its maximum rate (UDP, no EDNS: 512-byte answers, TC on big)"
