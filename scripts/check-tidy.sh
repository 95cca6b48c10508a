#!/usr/bin/env bash
# clang-tidy (.clang-tidy) on every C++ source of the compiler, the runtime and the tests, with
# the compile commands of a build (default build/). Fails on any finding.
#   scripts/check-tidy.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
tidy=$(command -v clang-tidy-19 || true)
[ -n "$tidy" ] || { echo "clang-tidy-19 is not installed" >&2; exit 1; }
cd "$root"
# (tests/fuzz is built only by the fuzzing build, with clang: not in these compile commands.)
mapfile -t files < <(git ls-files 'compiler/*.cpp' 'runtime/*.cpp' 'tests/*.cpp' | grep -v '^tests/fuzz/')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# -Wno-error: the build's -Werror would turn the libraries' own deprecation notes into errors.
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 "$tidy" -p "$build" --quiet --extra-arg=-Wno-error \
  --extra-arg=-Wno-unknown-warning-option > "$log" 2>&1 || true
if grep -E "(warning|error): " "$log" | grep -v "^[0-9]* warnings* generated" > /dev/null; then
  grep -E -A3 "(warning|error): " "$log" >&2
  echo "clang-tidy: findings above (in ${#files[@]} files)" >&2
  exit 1
fi
echo "clang-tidy: ${#files[@]} files, no findings"
