"""Writes a tiny IDX data set (images 4x4, labels 0..2) into a folder, optionally broken in one
way, for the data-error tests. Usage: make_idx.py DIR [MODE], MODE one of ok, bad-magic,
truncated, count-mismatch, label-range, shape, empty (no samples), zero-size (samples of 0x0)."""
import os
import struct
import sys

out, mode = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "ok")
n, h, w = 12, 4, 4
if mode == "shape":
    h = w = 5
if mode == "empty":
    n = 0
if mode == "zero-size":
    h = w = 0
images = bytes((i * 37) % 256 for i in range(n * h * w))
labels = bytes(i % 3 for i in range(n))
if mode == "label-range":
    labels = labels[:-1] + bytes([7])
magic = 0x803 if mode != "bad-magic" else 0x1234
img = struct.pack(">IIII", magic, n, h, w) + images
if mode == "truncated":
    img = img[:-10]
lab = struct.pack(">II", 0x801, n - 1 if mode == "count-mismatch" else n)
lab += labels[: n - 1] if mode == "count-mismatch" else labels
for prefix in ("train", "t10k"):
    with open(os.path.join(out, f"{prefix}-images"), "wb") as f:
        f.write(img)
    with open(os.path.join(out, f"{prefix}-labels"), "wb") as f:
        f.write(lab)
