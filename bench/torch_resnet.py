"""PyTorch's twin of examples/mnist_resnet.soma, for the README's accuracy column: the same
network, initialization scheme (PyTorch's defaults, which Soma follows), data and recipe.
    /usr/bin/python3 bench/torch_resnet.py [--seeds 1,2,3]
prints the test accuracy after the last epoch for each seed."""
import argparse

import torch
from torch import nn

from torch_mnist import report, train


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


def run(seed):
    torch.manual_seed(seed)
    return train(nn.Sequential(nn.Conv2d(1, 16, 3, padding=3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                               Basic(16), Down(16, 32), Down(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(64, 10)))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,2,3")
    report(run, p.parse_args().seeds)
