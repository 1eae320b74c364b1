#!/usr/bin/env bash
# Job-system benchmark (not a test): a synthetic ~1B-parameter BF16 Llama (2 GB), then
#  1. the bare ops over its layers in one process (bench_ops_model),
#  2. `shardpress local --workers 2` (embedded coordinator + 2 workers), wall time + peak RSS,
#  3. coordinator + 2 workers as separate processes, peak RSS of each,
#  4. blob transfer over loopback gRPC (bench_blob_transfer).
# Usage: scripts/bench-job.sh [PARAMS=1B] [WORKDIR=build/bench]
set -euo pipefail
cd "$(dirname "$0")/.."
params="${1:-1B}"
work="$(mkdir -p "${2:-build/bench}" && cd "${2:-build/bench}" && pwd)"
bin="$PWD/build/bin"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
model="$work/model-$params"
[ -d "$model" ] || "$bin/shardpress" synth --arch llama --params "$params" --dtype bf16 "$model"
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2/1024}' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1"; }

echo "== bare ops (one process, one thread)"
"$bin/bench_ops_model" "$model"

echo "== shardpress compress (ops + writing and syncing the checkpoint, one process, no coordinator)"
rm -rf "$work/compress-out"
/usr/bin/time -v "$bin/shardpress" compress "$model" "$work/compress-out" > /dev/null 2> "$work/compress.time"
echo "wall $(wall "$work/compress.time"), peak RSS $(rss "$work/compress.time")"

echo "== shardpress local --workers 2"
rm -rf "$work/local-out" "$work/local-state"
printf 'name: bench\nmodel: %s\noutput: %s\n' "$model" "$work/local-out" > "$work/job.yaml"
/usr/bin/time -v "$bin/shardpress" local "$work/job.yaml" --workers 2 --state-dir "$work/local-state" \
  > "$work/local.out" 2> "$work/local.time"
echo "wall $(wall "$work/local.time"), peak RSS $(rss "$work/local.time") (coordinator + 2 workers in one process)"

echo "== coordinator + 2 worker processes"
rm -rf "$work/mp" && mkdir -p "$work/mp/out"
"$bin/shardpress-coordinator" --listen 127.0.0.1:7179 \
  --data-dir "$work/mp/state" --model-root "$work" --output-root "$work/mp/out" 2> "$work/mp/coord.log" &
sleep 1
# Worker 2 fetches every input over gRPC, as on a PC that cannot see the model files.
"$bin/shardpress-worker" --coordinator 127.0.0.1:7179 \
  --cache-dir "$work/mp/w1" 2> "$work/mp/w1.log" &
"$bin/shardpress-worker" --coordinator 127.0.0.1:7179 \
  --cache-dir "$work/mp/w2" --no-direct-read 2> "$work/mp/w2.log" &
printf 'name: bench\nmodel: %s\noutput: %s\n' "$model" "$work/mp/out/nf4" > "$work/mp/job.yaml"
start=$(date +%s.%N)
"$bin/shardpress" --coordinator 127.0.0.1:7179 submit "$work/mp/job.yaml" --wait > /dev/null 2>&1
end=$(date +%s.%N)
# Peak RSS (VmHWM) of each daemon, then SIGTERM them.
hwm() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$1/status"; }
cpid=$(pgrep -f "^$bin/shardpress-coordinator --listen 127.0.0.1:7179")
w1=$(pgrep -f "^$bin/shardpress-worker --coordinator 127.0.0.1:7179 --cache-dir $work/mp/w1")
w2=$(pgrep -f "^$bin/shardpress-worker --coordinator 127.0.0.1:7179 --cache-dir $work/mp/w2")
peaks="coordinator $(hwm "$cpid"), worker (direct read) $(hwm "$w1"), worker (fetching) $(hwm "$w2")"
kill -TERM "$w1" "$w2" "$cpid" || true
wait || true
echo "wall $(echo "$end - $start" | bc) s; peak RSS: $peaks"

echo "== blob transfer"
"$bin/bench_blob_transfer" 512
