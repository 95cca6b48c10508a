#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with clang (AddressSanitizer, UBSan, coverage),
# seeds each from the examples and the tests, and runs each for SECONDS (default 60).
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     (harnesses: model data safetensors flags)
# A crash stops with a non-zero exit; its input is saved in build-fuzz/crashes/HARNESS/. Every
# file under tests/fuzz/regressions/HARNESS/ (crashes found before) is run first, every time.
# Needs a normal build of `soma` (for a checkpoint seed) in $SOMA_BUILD_DIR (default build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
harnesses=("${@:-model data safetensors flags}")
read -r -a harnesses <<< "${harnesses[*]}"
build=${SOMA_FUZZ_BUILD_DIR:-$root/build-fuzz}
soma=${SOMA_BUILD_DIR:-$root/build}/soma
python=/usr/bin/python3
[ -x "$python" ] || python=python3

if [ ! -f "$build/build.ninja" ]; then
  CC=clang-19 CXX=clang++-19 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOMA_FUZZ=ON
fi
cmake --build "$build" --target fuzz_model fuzz_data fuzz_safetensors fuzz_flags

# Seeds.
seeds=$build/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{model,data,safetensors,flags}
cp "$root"/examples/*.soma "$seeds/model/"
find "$root/tests/lit" -name '*.soma' -exec sh -c 'for f; do cp "$f" "$0/model/$(echo "$f" | md5sum | cut -c1-12).soma"; done' "$seeds" {} +
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" "$root/tests/lit/Inputs/make_idx.py" "$work"
"$python" "$root/tests/lit/data/write_npy.py" "$work"
prefix() { printf "\\x$(printf %02x "$1")" > "$2"; cat "$3" >> "$2"; } # mode byte, then the file
prefix 0 "$seeds/data/idx-images" "$work/train-images"
prefix 4 "$seeds/data/idx-labels" "$work/train-labels"
prefix 3 "$seeds/data/npy-x" "$work/x.npy"
prefix 7 "$seeds/data/npy-y" "$work/y.npy"
printf '1,2,3\n4,5,6\n' > "$work/a.csv" && prefix 1 "$seeds/data/csv" "$work/a.csv"
printf 'a,b,label\n1.5,2,cat\n3,-4e2,dog\n' > "$work/b.csv" && prefix 38 "$seeds/data/csv-named" "$work/b.csv"
cp "$root/tests/lit/Inputs/tiny.soma" "$work/"
if [ -x "$soma" ]; then
  "$soma" run "$work/tiny.soma" --epochs 1 --checkpoint "$seeds/safetensors/tiny.st" --no-progress > /dev/null
fi
printf -- '--epochs\n3\n--lr\n0.5\n--batch\n64\n--seed\n7\n' > "$seeds/flags/numbers"
printf -- '--data\ntrain=x.npy,y.npy\n--checkpoint\nc.st\n--metrics\nm.jsonl\n--threads\n2\n' > "$seeds/flags/paths"
printf -- '--resume\nr.st\n--weights\nw.st\n--no-progress\n--profile\n' > "$seeds/flags/conflict"

# The model file's words, from the tables that define them, for the mutator.
dict=$build/soma.dict
{
  for w in '{' '}' '(' ')' '[' ']' ',' ':' '=' '->' '@' '+' '-' '*' '/' '#' '//' '/*' '*/' '"' 'f32' 'true' 'false'; do
    printf '"%s"\n' "$w" | sed 's/\\/\\\\/g'
  done
  cat "$root"/compiler/layers/*.cpp "$root"/compiler/ast/*.cpp "$root/grammar/Soma.g4" |
    grep -o "[\"'][a-z_][a-z_0-9]*[\"']" | tr "'" '"' | sort -u
} > "$dict"

status=0
for h in "${harnesses[@]}"; do
  corpus=$build/corpus/$h
  crashes=$build/crashes/$h
  regressions=$root/tests/fuzz/regressions/$h
  mkdir -p "$corpus" "$crashes"
  # A fixed seed: the same mutations in every run (SOMA_FUZZ_SEED=0 draws one), so that a run
  # that passed passes again on the same tree, and new territory comes from new seconds.
  args=(-seed="${SOMA_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1
        -artifact_prefix="$crashes/")
  [ "$h" = model ] && args+=(-dict="$dict")
  dirs=("$corpus" "$seeds/$h")
  [ -d "$regressions" ] && dirs+=("$regressions")
  echo "== fuzz_$h for ${seconds} s"
  if ! ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       "$build/tests/fuzz/fuzz_$h" "${args[@]}" "${dirs[@]}" > "$build/fuzz_$h.log" 2>&1; then
    echo "fuzz_$h found a crash; the input is in $crashes/ (replay: $build/tests/fuzz/fuzz_$h FILE)"
    tail -60 "$build/fuzz_$h.log"
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^#[0-9]+.*DONE" "$build/fuzz_$h.log" | sed "s/^/  /" || true
done
exit $status
