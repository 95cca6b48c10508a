"""One workload of the sweep (bench/sweep_workloads.py) trained in PyTorch on the sweep's .npy
files. Prints one JSON object: the median samples/s of the epochs after the first. Usage:
  torch_sweep.py NAME X.npy Y.npy --epochs N --threads N --blas-threads N"""
import argparse
import json
import os
import sys

# OpenBLAS runs its own threads: their number is set before it loads (--blas-threads).
if "--blas-threads" in sys.argv:
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sweep_workloads import WORKLOADS  # noqa: E402
from torch_epochs import train_epochs  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("name")
p.add_argument("x")
p.add_argument("y")
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--blas-threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)
w = next(w for w in WORKLOADS if w["name"] == a.name)
model = w["torch"](nn)
opt_text = w["optimizer"]
lr = float(opt_text.split("lr: ")[1].split(",")[0].split(")")[0])
if opt_text.startswith("adam"):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
else:
    momentum = float(opt_text.split("momentum: ")[1].split(")")[0]) if "momentum" in opt_text else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
x = torch.from_numpy(np.load(a.x))
y = torch.from_numpy(np.load(a.y))
model.train()
rates, median = train_epochs(model, F.cross_entropy, opt, x, y, w["batch"], a.epochs)
print(json.dumps({"samples_per_second": median, "epochs": rates}))
