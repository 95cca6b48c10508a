"""PyTorch's twin of examples/mnist_mobilenet.soma, for the README's accuracy column: the same
network (depthwise separable blocks with ReLU6), initialization scheme (PyTorch's defaults, which
Soma follows), data and recipe.
    /usr/bin/python3 bench/torch_mobilenet.py [--seeds 1,2,3]
prints the test accuracy after the last epoch for each seed."""
import argparse

import torch
from torch import nn

from torch_mnist import report, train


def separable(c, filters, stride=1):
    return nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, groups=c), nn.BatchNorm2d(c), nn.ReLU6(),
                         nn.Conv2d(c, filters, 1), nn.BatchNorm2d(filters), nn.ReLU6())


def run(seed):
    torch.manual_seed(seed)
    return train(nn.Sequential(nn.Conv2d(1, 16, 3, padding=3), nn.BatchNorm2d(16), nn.ReLU6(), separable(16, 32, 2),
                               separable(32, 64, 2), separable(64, 128, 2), separable(128, 128),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)),
                 optimizer=lambda params: torch.optim.Adam(params, lr=0.002))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,2,3")
    report(run, p.parse_args().seeds)
