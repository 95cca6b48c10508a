"""What the PyTorch twins of the examples share (bench/torch_resnet.py, bench/torch_mobilenet.py,
and timed_epochs for bench/torch_autoencoder.py, bench/torch_attributes.py, bench/torch_words.py):
the MNIST files as Soma reads them (pixels over 255), and the recipe of the examples' train
blocks: their optimizer (SGD with momentum unless given), batches of a shuffled epoch, test
accuracy after the last epoch."""
import os
import time

import numpy as np
import torch
from torch import nn

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")


def idx(name):
    raw = open(os.path.join(root, name), "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def train(model, epochs=4, batch=64, optimizer=lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9)):
    """Trains `model` (built after torch.manual_seed) and returns its test accuracy."""
    x = torch.tensor(idx("train-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    y = torch.tensor(idx("train-labels-idx1-ubyte"), dtype=torch.int64)
    tx = torch.tensor(idx("t10k-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    ty = torch.tensor(idx("t10k-labels-idx1-ubyte"), dtype=torch.int64)
    opt = optimizer(model.parameters())
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


def timed_epochs(model, opt, x, y, loss, epochs, batch):
    """Trains `model` for `epochs` of shuffled batches of x against y (None: against x itself, an
    autoencoder's target); returns the training samples per second."""
    seconds = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            b = order[i:i + batch]
            opt.zero_grad()
            loss(model(x[b]), (x if y is None else y)[b]).backward()
            opt.step()
        seconds += time.perf_counter() - start
    return epochs * len(x) / seconds


def report(run, seeds):
    for s in seeds.split(","):
        print(f"seed {s}: test accuracy {100 * run(int(s)):.2f}%", flush=True)
