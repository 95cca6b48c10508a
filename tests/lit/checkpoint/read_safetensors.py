"""Reads a safetensors file with Python's standard library only (json and struct), checks the
format's rules, and prints each tensor. With --mlp IMAGES LABELS, also runs the tiny dense
network of tests/lit/Inputs/tiny.soma (flatten, dense + relu, dense) on the IDX test digits with
those weights and prints its accuracy, to show the weights mean what Soma says they mean."""
import argparse
import json
import struct
import sys

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--mlp", nargs=2, metavar=("IMAGES", "LABELS"))
args = ap.parse_args()

data = open(args.file, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8 : 8 + n].decode("utf-8"))
body = data[8 + n :]
meta = header.pop("__metadata__", {})
assert all(isinstance(v, str) for v in meta.values()), "metadata values must be strings"
print("metadata", json.dumps(meta, sort_keys=True))
tensors = {}
end = 0
for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    begin, stop = info["data_offsets"]
    assert begin == end, f"{name}: data must be contiguous"
    end = stop
    size = {"F32": 4, "I64": 8}[info["dtype"]]
    count = 1
    for d in info["shape"]:
        count *= d
    assert stop - begin == count * size, f"{name}: wrong byte count"
    fmt = "<%d%s" % (count, "f" if info["dtype"] == "F32" else "q")
    tensors[name] = (info["shape"], struct.unpack(fmt, body[begin:stop]))
    print("tensor", name, info["dtype"], info["shape"])
assert end == len(body), "no bytes after the last tensor"

if args.mlp:
    img = open(args.mlp[0], "rb").read()
    lab = open(args.mlp[1], "rb").read()
    _, count, h, w = struct.unpack(">IIII", img[:16])
    pixels = h * w

    def dense(x, name):
        (rows, cols), wv = tensors[name + ".w"]
        _, bv = tensors[name + ".b"]
        return [sum(x[i] * wv[i * cols + j] for i in range(rows)) + bv[j] for j in range(cols)]

    correct = 0
    for s in range(count):
        x = [b / 255.0 for b in img[16 + s * pixels : 16 + (s + 1) * pixels]]
        hidden = [max(v, 0.0) for v in dense(x, "dense_1")]
        out = dense(hidden, "dense_2")
        correct += out.index(max(out)) == lab[8 + s]
    print("accuracy %.2f%%" % (100.0 * correct / count))
