#!/usr/bin/env bash
# Compares sluice-bench with dpdk-testpmd on the identical stream, same core, same burst, in one
# run: the two alternate RUNS times each, every run SECONDS long with 1-second statistics; the
# first periods are warm-up. Prints the median Mpps of each and their ratio (a ratio, since
# absolute figures on a shared 2-core machine are noisy).
#
#   scripts/bench-vs-testpmd.sh [--mode io|macswap|rxonly|5tswap|lb] [--testpmd-mode io|5tswap]
#                               [--input null|w1] [--runs N] [--seconds S] [--warmup P] [--json]
#
# --warmup P: 1-second periods left out at the start of every run (default 5: sluice-bench's
#             lb mode needs 3-4 s before its rate settles; testpmd is steady sooner).
#
# --input null: a net_null pair (packets appear from nowhere, TX frees them).
# --input pcap:FILE: any pcap (scripts/make_lb_workload.py writes parameterised ones).
# --input w1:   workload W1 (../shared/bench/make_w1.py, or scripts/make_w1.py) replayed by
#               net_pcap with infinite_rx=1, port topology loop (TX is dropped by the PMD).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=io TESTPMD_MODE="" INPUT=null RUNS=3 SECONDS_PER_RUN=12 WARMUP=5 JSON=0
while (($#)); do
  case "$1" in
    --mode) MODE=$2; shift 2 ;;
    --testpmd-mode) TESTPMD_MODE=$2; shift 2 ;;
    --input) INPUT=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --json) JSON=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$TESTPMD_MODE" ] || TESTPMD_MODE=$([ "$MODE" = io ] || [ "$MODE" = macswap ] || [ "$MODE" = rxonly ] || [ "$MODE" = 5tswap ] && echo "$MODE" || echo io)

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing: run scripts/setup.sh" >&2; exit 1; }
cargo build --release --quiet --bin sluice-bench
BENCH=target/release/sluice-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

case "$INPUT" in
  null)
    PORTS=2
    VDEVS=(--vdev net_null0 --vdev net_null1)
    TOPOLOGY=paired
    MBUFS=16384
    ;;
  w1)
    PORTS=1
    W1_SCRIPT=../shared/bench/make_w1.py
    [ -f "$W1_SCRIPT" ] || W1_SCRIPT=scripts/make_w1.py
    python3 "$W1_SCRIPT" "$WORK/w1.pcap" >/dev/null
    VDEVS=(--vdev "net_pcap0,rx_pcap=$WORK/w1.pcap,infinite_rx=1")
    TOPOLOGY=loop
    MBUFS=32768 # infinite_rx preloads the whole pcap into mbufs
    ;;
  pcap:*)
    # Any pcap, e.g. from scripts/make_lb_workload.py (flows, new-connection share via
    # --rounds, TCP/UDP mix, frame size).
    PORTS=1
    VDEVS=(--vdev "net_pcap0,rx_pcap=${INPUT#pcap:},infinite_rx=1")
    TOPOLOGY=loop
    # infinite_rx preloads every frame into an mbuf; the rest is headroom for the bursts in
    # flight (a fixed 131072 does not fit in -m 512 next to the pcap's own copy).
    FRAMES=$(python3 scripts/lib/pcap_frames.py "${INPUT#pcap:}")
    MBUFS=$((FRAMES + 24576))
    ;;
  *) echo "unknown input $INPUT" >&2; exit 2 ;;
esac

EAL=(-l 0,1 --no-huge -m 512 --no-shconf --no-pci --log-level=warning "${VDEVS[@]}")
COMMON=(--nb-cores=1 --burst=32 --rxq=1 --txq=1 --port-topology="$TOPOLOGY" --stats-period 1 --total-num-mbufs="$MBUFS")

run_one() { # tool mode -> median pps on stdout
  local tool=$1 mode=$2 log="$WORK/$1-$RANDOM.log"
  if [ "$tool" = testpmd ]; then
    timeout -s INT "$SECONDS_PER_RUN" dpdk-testpmd "${EAL[@]}" -- --forward-mode="$mode" "${COMMON[@]}" \
      </dev/null >"$log" 2>&1 || true
  else
    timeout -s INT "$SECONDS_PER_RUN" "$BENCH" "${EAL[@]}" -- --forward-mode="$mode" "${COMMON[@]}" \
      </dev/null >"$log" 2>&1 || true
  fi
  # median_pps.py prints 0 itself when the log has no statistics.
  python3 scripts/lib/median_pps.py "$PORTS" "$WARMUP" <"$log" || { echo "run of $tool failed, log:" >&2; tail -20 "$log" >&2; }
}

declare -a T S
for ((i = 0; i < RUNS; i++)); do
  T+=("$(run_one testpmd "$TESTPMD_MODE")")
  S+=("$(run_one sluice "$MODE")")
done

python3 - "$MODE" "$TESTPMD_MODE" "$INPUT" "$JSON" "${#T[@]}" "${T[@]}" "${S[@]}" <<'PY'
import json, statistics, sys
mode, tmode, inp, as_json, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
t = [int(x) for x in sys.argv[6:6 + n]]
s = [int(x) for x in sys.argv[6 + n:6 + 2 * n]]
tm, sm = statistics.median(t) / 1e6, statistics.median(s) / 1e6
ratio = sm / tm if tm else 0.0
# The best run of each tool: the one least disturbed by other tenants of a shared host.
tb, sb = max(t) / 1e6, max(s) / 1e6
best_ratio = sb / tb if tb else 0.0
if as_json:
    print(json.dumps({"input": inp, "sluice_mode": mode, "testpmd_mode": tmode, "runs": n,
                      "testpmd_mpps": round(tm, 3), "sluice_mpps": round(sm, 3), "ratio": round(ratio, 3),
                      "best_ratio": round(best_ratio, 3),
                      "testpmd_runs_mpps": [round(x / 1e6, 3) for x in t],
                      "sluice_runs_mpps": [round(x / 1e6, 3) for x in s]}))
else:
    print(f"input={inp} runs={n} (each run's figure is the median of its 1 s periods)")
    print(f"  dpdk-testpmd --forward-mode={tmode:<8} median {tm:8.3f} Mpps   runs {[round(x/1e6, 2) for x in t]}")
    print(f"  sluice-bench --forward-mode={mode:<8} median {sm:8.3f} Mpps   runs {[round(x/1e6, 2) for x in s]}")
    print(f"  ratio sluice/testpmd: {ratio:.3f} (medians), {best_ratio:.3f} (best runs)")
PY
