#!/usr/bin/env bash
# Disk benchmark (not a test): the coordinator's data dir (`du -sb`) across a job's life.
# (`du -sb` once the data dir has settled: two equal readings 2 s apart.)
# One coordinator, two workers (one fetching every input over gRPC), then
#   stories260k RTN, stories260k GPTQ (the peak of live activation blobs sampled from
#   /metrics every 50 ms), a synthetic 350M Llama RTN; then `shardpress delete` of all
#   three. Prints one line per step; the last says how far the data dir is from empty.
# Usage: scripts/bench-disk.sh [WORKDIR=build/bench-disk]
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mkdir -p "${1:-build/bench-disk}" && cd "${1:-build/bench-disk}" && pwd)"
bin="$PWD/build/bin"
fx="$(cd ../shared/fixtures/stories260k && pwd)"
synth="$work/synth-350M"
[ -d "$synth" ] || "$bin/shardpress" synth --arch llama --params 350M --dtype bf16 "$synth" > /dev/null
rm -rf "$work/state" "$work/out" && mkdir -p "$work/out"
"$bin/shardpress-coordinator" --listen 127.0.0.1:0 --data-dir "$work/state" --model-root / \
  --output-root "$work/out" --metrics-listen 127.0.0.1:0 2> "$work/coordinator.log" &
cpid=$!
for _ in $(seq 100); do [ -s "$work/state/metrics.addr" ] && break; sleep 0.1; done
addr="$(head -1 "$work/state/coordinator.addr")"
metrics="$(head -1 "$work/state/metrics.addr")"
"$bin/shardpress-worker" --coordinator "$addr" --cache-dir "$work/w1" 2> "$work/w1.log" &
w1=$!
"$bin/shardpress-worker" --coordinator "$addr" --cache-dir "$work/w2" --no-direct-read 2> "$work/w2.log" &
w2=$!
trap 'kill -TERM $w1 $w2 $cpid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
sp() { "$bin/shardpress" --coordinator "$addr" "$@"; }
gauge() { curl -s "http://$metrics/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
# The data dir once the store has settled (the runner reclaims in the background after
# deletes): two equal readings 2 s apart, at most 60 s.
size() {
  local a b=-1
  a=$(du -sb "$work/state" | cut -f1)
  for _ in $(seq 30); do
    sleep 2; b=$(du -sb "$work/state" | cut -f1)
    [ "$a" = "$b" ] && break
    a=$b
  done
  echo "$b"
}
report() { printf '%-44s %12s bytes, %6s blobs\n' "$1" "$2" "$(gauge shardpress_blobs)"; }

empty=$(size)
report "empty" "$empty"
printf 'name: rtn\nmodel: %s\noutput: %s\n' "$fx/hf-bf16" "$work/out/rtn" > "$work/rtn.yaml"
sp submit "$work/rtn.yaml" --wait > /dev/null 2>&1
report "after stories260k RTN" "$(size)"

printf 'name: gptq\nmodel: %s\noutput: %s\nquantize: {method: gptq}\ncalibrate: {ids: %s}\n' \
  "$fx/hf-bf16" "$work/out/gptq" "$fx/text/calib.ids.txt" > "$work/gptq.yaml"
sp submit "$work/gptq.yaml" > /dev/null 2>&1
peak=0
while :; do
  n=$(gauge shardpress_intermediate_blobs); [ -n "$n" ] && [ "$n" -gt "$peak" ] && peak=$n
  state=$(sp status gptq -o json | sed -n 's/^  "state": "\([A-Z]*\)".*/\1/p')
  case "$state" in SUCCEEDED|FAILED|CANCELLED) break ;; esac
  sleep 0.05
done
report "after stories260k GPTQ ($state)" "$(size)"
echo "peak live activation blobs during the GPTQ job: $peak (layers: $(sp status gptq -o json | grep -c '"id": "job-0002/layer'))"

printf 'name: synth\nmodel: %s\noutput: %s\n' "$synth" "$work/out/synth" > "$work/synth.yaml"
sp submit "$work/synth.yaml" --wait > /dev/null 2>&1
report "after synthetic 350M RTN" "$(size)"

sp delete rtn > /dev/null 2>&1
report "after delete rtn" "$(size)"
sp delete gptq > /dev/null 2>&1
report "after delete gptq" "$(size)"
sp delete synth > /dev/null 2>&1
final=$(size)
report "after delete synth" "$final"
echo "data dir after deleting all three: $((final - empty)) bytes more than empty ($(( (final - empty) / 1024 )) KiB)"
