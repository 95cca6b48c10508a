"""The sweep: models one step away from the benchmark's three (strided and 1x1 convolutions,
batchnorm, layernorm with gelu and dropout, wide MLPs, large batches, tanh networks, a ResNet-style
stem), each trained in Soma and in PyTorch on the same synthetic data of the right shapes, the two
alternating. Prints, per workload, each side's best round in samples/s, the ratio, Soma's GFLOP/s
and its share of the measured FMA peak of all cores, and Soma's JIT time. Run it through bench/run
--sweep, which builds what it needs. Each workload is written once here: its Soma model text, and
the same network for PyTorch (bench/torch_sweep.py reads the same table).
Usage: sweep.py --soma build/soma --out build/bench [--rounds N] [--only S1,S2] [--no-torch]"""
import argparse
import array
import json
import os
import re
import statistics
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from sweep_workloads import WORKLOADS  # noqa: E402


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def npy(path, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)


def make_data(out, w):
    """x.npy (uniform in [0, 1), a fixed pattern) and y.npy (class indices) for a workload."""
    x_path, y_path = os.path.join(out, f"{w['name']}-x.npy"), os.path.join(out, f"{w['name']}-y.npy")
    if not (os.path.exists(x_path) and os.path.exists(y_path)):
        n, size = w["samples"], 1
        for d in w["input"]:
            size *= d
        seed = 12345
        xs = array.array("f", bytes(4 * n * size))
        for i in range(n * size):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            xs[i] = (seed >> 8) / float(1 << 23)
        ys = array.array("q", [(i * 7919 + (i >> 3)) % w["classes"] for i in range(n)])
        shape = "(" + ", ".join(str(d) for d in [n] + w["input"]) + ")"
        npy(x_path, "<f4", shape, xs.tobytes())
        npy(y_path, "<i8", f"({n},)", ys.tobytes())
    return x_path, y_path


def soma_model(out, w, x_path, y_path):
    path = os.path.join(out, f"{w['name']}.soma")
    dims = ", ".join(str(d) for d in w["input"])
    text = (f"model {w['name']} {{\n  input x: f32[{dims}]\n" + "".join(f"  {l}\n" for l in w["soma"]) + "}\n"
            f"train {w['name']} {{\n  data train = npy(\"{x_path}\", \"{y_path}\")\n  loss = cross_entropy(label)\n"
            f"  optimizer = {w['optimizer']}\n  batch = {w['batch']}\n  epochs = 1\n  seed = 1\n}}\n")
    with open(path, "w") as f:
        f.write(text)
    return path


def soma_train(soma, out, model, epochs, threads):
    metrics = os.path.join(out, "sweep-metrics.jsonl")
    run([soma, "run", model, "--epochs", str(epochs), "--threads", str(threads), "--metrics", metrics,
         "--no-progress", "--no-cache"])
    with open(metrics) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return statistics.median(l["samples_per_second"] for l in lines[1:]), lines[0]["jit_ms"]


def soma_flops_per_sample(soma, model):
    text = run([soma, "run", model, "--epochs", "1", "--profile", "--no-progress"])
    flops = re.search(r"about ([0-9.]+) MFLOP per step", text)
    batch = re.search(r"batch ([0-9]+)", text)
    return float(flops.group(1)) * 1e6 / int(batch.group(1)) if flops and batch else float("nan")


TORCH_PYTHON = next((p for p in (sys.executable, "/usr/bin/python3")
                     if subprocess.run([p, "-c", "import torch"], capture_output=True).returncode == 0), None)


def torch_train(w, x_path, y_path, epochs, threads):
    torch_threads, blas_threads = threads
    text = run([TORCH_PYTHON, os.path.join(ROOT, "bench", "torch_sweep.py"), w["name"], x_path, y_path,
                "--epochs", str(epochs), "--threads", str(torch_threads), "--blas-threads", str(blas_threads)])
    return json.loads(text)["samples_per_second"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--soma", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default="")
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args()
    a.out = os.path.abspath(a.out) # the model files name their data by absolute paths
    os.makedirs(a.out, exist_ok=True)
    cores = os.cpu_count() or 1
    peak = float(run([os.path.join(a.out, "fma_peak")]))
    torch_ok = not a.no_torch and TORCH_PYTHON is not None
    chosen = [w for w in WORKLOADS if not a.only or w["name"] in a.only.split(",")]
    print(f"FMA peak measured here: {peak:.1f} GFLOP/s per core, {cores} cores; PyTorch: "
          f"{'yes' if torch_ok else 'not measured'}", flush=True)
    files = {w["name"]: make_data(a.out, w) for w in chosen}
    models = {w["name"]: soma_model(a.out, w, *files[w["name"]]) for w in chosen}
    soma, jit, theirs = {}, {}, {}
    settings = sorted({(1, 1), (1, cores), (cores, 1), (cores, cores)})
    for r in range(a.rounds):
        for w in chosen:
            name = w["name"]
            rate, ms = soma_train(a.soma, a.out, models[name], w["epochs"], cores)
            soma.setdefault(name, []).append(rate)
            jit.setdefault(name, []).append(ms)
            if torch_ok:
                theirs.setdefault(name, []).append(max(torch_train(w, *files[name], w["epochs"], t) for t in settings))
            print(f"round {r + 1}: {name} soma {rate:,.0f}" +
                  (f", pytorch {theirs[name][-1]:,.0f}" if torch_ok else "") + " samples/s", flush=True)
    print()
    print(f"| workload | Soma ({cores} threads) | PyTorch (best thread setting) | ratio | "
          f"Soma GFLOP/s (share of {cores}-core peak) | JIT ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w in chosen:
        name = w["name"]
        best, tbest = max(soma[name]), max(theirs[name]) if name in theirs else float("nan")
        gflops = soma_flops_per_sample(a.soma, models[name]) * best / 1e9
        print(f"| {name} {w['recipe']} | {best:,.0f} | {tbest:,.0f} | {best / tbest:.2f}x | "
              f"{gflops:.1f} ({100 * gflops / (peak * cores):.0f}%) | {min(jit[name]):.0f} |")
    if theirs:
        print(f"\nRatios of the medians of {a.rounds} rounds: " + ", ".join(
            f"{k} {statistics.median(soma[k]) / statistics.median(theirs[k]):.2f}x" for k in soma))


main()
