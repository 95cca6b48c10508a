"""The benchmark's workloads in PyTorch, on the same IDX files and with the same recipes as the
Soma examples. Prints one JSON object. Usage:
  torch_workloads.py train W1|W2|W3 --data DIR --threads N --blas-threads N --epochs N
  torch_workloads.py forward --data DIR --threads N --blas-threads N  (W4: the W2 network)"""
import argparse
import json
import os
import struct
import sys
import time

# OpenBLAS runs its own threads: their number is set before it loads (--blas-threads).
if "--blas-threads" in sys.argv:
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_epochs import train_epochs  # noqa: E402


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return torch.frombuffer(bytearray(data[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


def mlp(sizes, act):
    layers = [nn.Flatten()]
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(act())
    return nn.Sequential(*layers)


def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


# (model, loss on (output, labels), optimizer, batch, image shape): examples/mnist_mlp.soma,
# mnist_adam.soma and mnist_lenet.soma.
def workload(name):
    if name == "W1":
        model = mlp([784, 64, 10], nn.Sigmoid)
        body = model
        model = nn.Sequential(body, nn.Sigmoid())
        loss = lambda out, y: F.mse_loss(out, F.one_hot(y, 10).float())
        return model, loss, torch.optim.SGD(model.parameters(), lr=20), 32, (28, 28)
    if name == "W2":
        model = mlp([784, 256, 128, 10], nn.ReLU)
        return model, F.cross_entropy, torch.optim.Adam(model.parameters(), lr=0.001), 64, (28, 28)
    model = lenet()
    return model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 64, (1, 28, 28)


def train(args):
    torch.manual_seed(1)
    x = idx(f"{args.data}/train-images-idx3-ubyte").float() / 255
    y = idx(f"{args.data}/train-labels-idx1-ubyte").long()
    model, loss_fn, opt, batch, shape = workload(args.workload)
    x = x.reshape((-1,) + shape)
    rates, median = train_epochs(model, loss_fn, opt, x, y, batch, args.epochs)
    print(json.dumps({"samples_per_second": median, "epochs": rates}))


def forward(args):
    torch.manual_seed(1)
    model = nn.Sequential(mlp([784, 256, 128, 10], nn.ReLU), nn.Softmax(dim=1)).eval()
    x = torch.rand(256, 28, 28)

    def best(n, calls):
        times = []
        with torch.no_grad():
            for _ in range(7):
                t = time.perf_counter()
                for _ in range(calls):
                    model(x[:n])
                times.append((time.perf_counter() - t) / calls)
        return min(times)

    best(1, 1000)
    one, many = best(1, 5000), best(256, 200)
    print(json.dumps({"batch1_us": one * 1e6, "batch256_samples_per_second": 256 / many}))


p = argparse.ArgumentParser()
p.add_argument("mode", choices=["train", "forward"])
p.add_argument("workload", nargs="?", default="W2")
p.add_argument("--data", required=True)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--blas-threads", type=int, default=1)
p.add_argument("--epochs", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
train(a) if a.mode == "train" else forward(a)
