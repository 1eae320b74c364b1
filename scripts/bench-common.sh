# Helpers the benchmark scripts share (sourced, not run).
# now: seconds since the epoch, nanosecond resolution.
now() { date +%s.%N; }
# timed CMD...: runs CMD (its output discarded) and prints its wall seconds.
timed() { local t0; t0=$(now); "$@" > /dev/null 2>&1; echo "$(now) - $t0" | bc; }
# median: of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# gguf_setup WORKDIR: the GGUF quality scripts' common start — sets work, shared, tools,
# model, text, sp; empties WORKDIR; writes the eval text without its story separators
# ($work/eval.txt) and our F32 export of stories260k ($work/F32.gguf).
gguf_setup() {
  work="$(mkdir -p "$1" && cd "$1" && pwd)"
  shared="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}" && pwd)"
  tools="$shared/tools/llama.cpp/bin"
  model="$shared/fixtures/stories260k/hf-f32"
  text="$shared/fixtures/stories260k/text"
  sp="$PWD/build/bin/shardpress"
  rm -rf "${work:?}"/*
  grep -v '^<|endoftext|>$' "$text/eval.txt" > "$work/eval.txt"
  "$sp" compress "$model" "$work/F32.gguf" --format gguf --type F32 > /dev/null 2>&1
}
# stories_quality_setup SAMPLES WORKDIR: the stories260k (bf16) quality scripts' common
# start — sets work, bin, fx, model, calib (the first SAMPLES lines of calib.ids.txt as
# flags); ppl DIR prints a model's perplexity on the eval set (162 x 256 tokens).
stories_quality_setup() {
  work="$(mkdir -p "$2" && cd "$2" && pwd)"
  bin="$PWD/build/bin"
  fx="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k" && pwd)"
  model="$fx/hf-bf16"
  calib=(--calib-ids "$fx/text/calib.ids.txt" --calib-samples "$1")
}
ppl() { "$bin/shardpress" eval "$1" --ids "$fx/text/eval.ids.txt" -o json | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'; }
