"""Writes x.npy (6 samples of 2x2 float32) and y.npy (6 int64 labels) into a folder, as NumPy's
format 1.0 lays them out, with the standard library only. A second argument breaks them in one
way: nan (a NaN feature), inf-label, trailing (bytes after the data), zero-size (samples (6, 0)),
or makes the labels (6, 2), two yes-or-no answers a sample: wide (wide-bad: one answer is 2);
sequences writes 64 samples of 30 steps of 4 features instead."""
import struct
import sys


def npy(descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


mode = sys.argv[2] if len(sys.argv) > 2 else "ok"
x = [float(i % 5) / 4 for i in range(24)]
if mode == "nan":
    x[13] = float("nan")
y = [i % 2 for i in range(6)]
xs = npy("<f4", "(6, 2, 2)", struct.pack("<24f", *x))
if mode == "trailing":
    xs += b"\0\0\0\0"
if mode == "zero-size":
    xs = npy("<f4", "(6, 0)", b"")
if mode == "sequences":
    xs = npy("<f4", "(64, 30, 4)", struct.pack("<7680f", *[((i * 37) % 11) / 10 - 0.5 for i in range(7680)]))
    y = [i % 2 for i in range(64)]
open(sys.argv[1] + "/x.npy", "wb").write(xs)
if mode == "sequences":
    open(sys.argv[1] + "/y.npy", "wb").write(npy("<i8", "(64,)", struct.pack("<64q", *y)))
elif mode.startswith("wide"):
    answers = [i % 2 for i in range(6)] + [1 - i % 2 for i in range(6)]
    if mode == "wide-bad":
        answers[3] = 2
    open(sys.argv[1] + "/y.npy", "wb").write(npy("<f4", "(6, 2)", struct.pack("<12f", *answers)))
elif mode == "inf-label":
    open(sys.argv[1] + "/y.npy", "wb").write(npy("<f8", "(6,)", struct.pack("<6d", 0, 1, 0, float("inf"), 0, 1)))
else:
    open(sys.argv[1] + "/y.npy", "wb").write(npy("<i8", "(6,)", struct.pack("<6q", *y)))
