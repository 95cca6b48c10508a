"""Soma against PyTorch on the workloads of the performance issue, alternating the two so that
the machine's drift hits both alike. Prints a table of samples/s from each side's best round, the
ratios, and Soma's GFLOP/s against the FMA peak measured here, then the ratios of the medians.
The best round is the least disturbed one: on a shared machine a neighbour can slow a whole run
(on the machine these figures come from, to half for minutes at a time). Run it through
bench/run, which builds what it needs.
Usage: bench.py --soma build/soma --out build/bench [--rounds N] [--no-torch]"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "mnist")
# name, example, epochs per measurement (the first is a warm-up, not counted; the rate is the
# median of the others, so that a short stall of the machine does not decide it), recipe
WORKLOADS = [
    ("W1", "mnist_mlp.soma", 12, "784-64-10 sigmoid, MSE, SGD, batch 32"),
    ("W2", "mnist_adam.soma", 6, "784-256-128-10 ReLU, cross-entropy, Adam, batch 64"),
    ("W3", "mnist_lenet.soma", 4, "LeNet-5, momentum SGD, batch 64"),
]
TARGET = {"W1": 3.0, "W2": 3.0, "W3": 3.0}


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def soma_train(soma, out, example, epochs, threads):
    metrics = os.path.join(out, "metrics.jsonl")
    run([soma, "run", os.path.join(ROOT, "examples", example), "--epochs", str(epochs), "--threads", str(threads),
         "--metrics", metrics, "--no-progress"])
    with open(metrics) as f:
        rates = [json.loads(line)["samples_per_second"] for line in f if line.strip()]
    return statistics.median(rates[1:])


def soma_flops_per_sample(soma, example):
    """The multiply-adds of a training step (as --profile counts them, times 2) per sample."""
    text = run([soma, "run", os.path.join(ROOT, "examples", example), "--epochs", "1", "--profile", "--no-progress"])
    flops = re.search(r"about ([0-9.]+) MFLOP per step", text)
    batch = re.search(r"batch ([0-9]+)", text)
    return float(flops.group(1)) * 1e6 / int(batch.group(1)) if flops and batch else float("nan")


# Debian's python3-torch is for the system's python3, which may not be the python3 on PATH.
TORCH_PYTHON = next((p for p in (sys.executable, "/usr/bin/python3")
                     if subprocess.run([p, "-c", "import torch"], capture_output=True).returncode == 0), None)


def torch(mode, *args, threads):
    torch_threads, blas_threads = threads
    text = run([TORCH_PYTHON, os.path.join(ROOT, "bench", "torch_workloads.py"), mode, *args, "--data", DATA,
                "--threads", str(torch_threads), "--blas-threads", str(blas_threads)])
    return json.loads(text)


def thread_settings(cores):
    """PyTorch's thread settings tried, (intra-op threads, OpenBLAS threads): the best one counts."""
    return sorted({(1, 1), (1, cores), (cores, 1), (cores, cores)})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--soma", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cores = os.cpu_count() or 1
    peak = float(run([os.path.join(a.out, "fma_peak")]))
    torch_ok = not a.no_torch and TORCH_PYTHON is not None
    print(f"FMA peak measured here: {peak:.1f} GFLOP/s per core, {cores} cores; PyTorch: "
          f"{'yes' if torch_ok else 'not installed (bench/run --torch installs python3-torch)'}", flush=True)

    soma, theirs = {}, {}
    for r in range(a.rounds):
        for name, example, epochs, _ in WORKLOADS:
            soma.setdefault(name, []).append(soma_train(a.soma, a.out, example, epochs, cores))
            if torch_ok:
                theirs.setdefault(name, []).append(max(
                    torch("train", name, "--epochs", str(epochs), threads=t)["samples_per_second"]
                    for t in thread_settings(cores)))
            print(f"round {r + 1}: {name} soma {soma[name][-1]:,.0f}" +
                  (f", pytorch {theirs[name][-1]:,.0f}" if torch_ok else "") + " samples/s", flush=True)
        weights = os.path.join(a.out, "w4.st")
        forward = os.path.join(a.out, "forward")
        timings = [run([forward, weights, str(t)]).split() for t in sorted({1, cores})]  # the best thread setting
        one = min(float(t[0]) for t in timings)
        many = max(float(t[1]) for t in timings)
        soma.setdefault("W4-1", []).append(one)
        soma.setdefault("W4-256", []).append(many)
        if torch_ok:
            runs = [torch("forward", threads=t) for t in thread_settings(cores)]
            theirs.setdefault("W4-1", []).append(min(d["batch1_us"] for d in runs))
            theirs.setdefault("W4-256", []).append(max(d["batch256_samples_per_second"] for d in runs))
        print(f"round {r + 1}: W4 soma {one:.2f} us at batch 1, {many:,.0f} samples/s at batch 256", flush=True)

    flops = {name: soma_flops_per_sample(a.soma, example) for name, example, _, _ in WORKLOADS}
    def best(runs):  # the best round: the fastest rate, or the shortest time (W4 at batch 1)
        return {k: min(v) if k == "W4-1" else max(v) for k, v in runs.items()}
    top = best(soma)
    ttop = best(theirs)
    print()
    print(f"| workload | Soma ({cores} threads, best round) | PyTorch 1.13 "
          f"{'(best thread setting and round)' if torch_ok else '(not measured)'} | ratio | "
          f"target | Soma GFLOP/s (share of {cores}-core peak) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, example, _, recipe in WORKLOADS:
        ratio = top[name] / ttop[name] if name in ttop else float("nan")
        gflops = flops[name] * top[name] / 1e9  # at the training rate of the table
        share = 100 * gflops / (peak * cores)
        print(f"| {name} `{example}` ({recipe}) | {top[name]:,.0f} samples/s | "
              f"{ttop.get(name, float('nan')):,.0f} | {ratio:.2f}x | >= {TARGET[name]:.0f}x | "
              f"{gflops:.1f} ({share:.1f}%) |")
    r1 = ttop["W4-1"] / top["W4-1"] if "W4-1" in ttop else float("nan")
    r256 = top["W4-256"] / ttop["W4-256"] if "W4-256" in ttop else float("nan")
    print(f"| W4 forward, batch 1 | {top['W4-1']:.2f} us | {ttop.get('W4-1', float('nan')):.2f} us | {r1:.2f}x faster | "
          f"<= 7 us | |")
    print(f"| W4 forward, batch 256 | {top['W4-256']:,.0f} samples/s | {ttop.get('W4-256', float('nan')):,.0f} | "
          f"{r256:.2f}x | >= 2x | |")
    if theirs:
        ratios = []
        for k in soma:
            m, t = statistics.median(soma[k]), statistics.median(theirs[k])
            ratios.append(f"{k} {t / m if k == 'W4-1' else m / t:.2f}x")
        print(f"\nRatios of the medians of {a.rounds} rounds: " + ", ".join(ratios))


main()
