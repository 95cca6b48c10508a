#!/usr/bin/env python3
"""Four yes-or-no facts about each MNIST digit, for multi-label classification: whether it is odd,
at least 5, a prime (2, 3, 5, 7), and drawn with a closed loop (0, 6, 8, 9). Reads the IDX label
files of data/mnist (scripts/fetch-mnist.sh) and writes {train,t10k}-attributes.npy beside them,
float32 of shape (n, 4), with the standard library only. Does nothing if they exist."""
import os
import struct
import sys

FACTS = ["odd", "at least 5", "prime", "loop"]


def facts(digit):
    return [digit % 2 == 1, digit >= 5, digit in (2, 3, 5, 7), digit in (0, 6, 8, 9)]


def write_npy(path, rows):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (len(rows), len(FACTS))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    values = [float(v) for row in rows for v in row]
    tmp = f"{path}.{os.getpid()}.tmp"  # whole files only, even when two runs race
    with open(tmp, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack(f"<{len(values)}f", *values))
    os.replace(tmp, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(here, "..", "data", "mnist"))
    for part in ["train", "t10k"]:
        out = os.path.join(folder, f"{part}-attributes.npy")
        if os.path.exists(out):
            continue
        raw = open(os.path.join(folder, f"{part}-labels-idx1-ubyte"), "rb").read()
        magic, count = struct.unpack(">II", raw[:8])
        if magic != 0x801 or len(raw) != 8 + count:
            sys.exit(f"{part}-labels-idx1-ubyte: not an IDX label file")
        write_npy(out, [facts(d) for d in raw[8:]])
        print(f"wrote the facts ({', '.join(FACTS)}) of {count} digits to {out}")


main()
