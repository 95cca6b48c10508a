"""PyTorch's twin of examples/mnist_resnet.soma, for the README's accuracy column: the same
network, initialization scheme (PyTorch's defaults, which Soma follows), data and recipe.
    /usr/bin/python3 bench/torch_resnet.py [--seeds 1,2,3]
prints the test accuracy after the last epoch for each seed."""
import argparse
import os

import numpy as np
import torch
from torch import nn

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")


def idx(name):
    raw = open(os.path.join(root, name), "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


class Basic(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                               nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.a(x))


class Down(nn.Module):
    def __init__(self, c, f):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, f, 3, 2, 1), nn.BatchNorm2d(f), nn.ReLU(), nn.Conv2d(f, f, 3, padding=1),
                               nn.BatchNorm2d(f))
        self.shortcut = nn.Sequential(nn.Conv2d(c, f, 1, 2), nn.BatchNorm2d(f))

    def forward(self, x):
        return torch.relu(self.shortcut(x) + self.a(x))


def run(seed, epochs=4, batch=64, lr=0.05):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                          Basic(16), Down(16, 32), Down(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 10))
    x = torch.tensor(idx("train-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    y = torch.tensor(idx("train-labels-idx1-ubyte"), dtype=torch.int64)
    tx = torch.tensor(idx("t10k-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    ty = torch.tensor(idx("t10k-labels-idx1-ubyte"), dtype=torch.int64)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            b = order[i:i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(tx).argmax(1) == ty).float().mean().item()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,2,3")
    for s in p.parse_args().seeds.split(","):
        print(f"seed {s}: test accuracy {100 * run(int(s)):.2f}%", flush=True)
