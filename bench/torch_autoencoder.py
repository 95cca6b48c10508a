"""The PyTorch twin of examples/mnist_autoencoder.soma: the same layers, initialization rule
(PyTorch's own), Adam lr 0.002, batch 64, 10 epochs of shuffled batches; prints the test loss
(the mean squared error per pixel) after the last epoch and the training samples per second.
Usage: /usr/bin/python3 bench/torch_autoencoder.py [SEEDS, e.g. 1,2,3] [THREADS]"""
import sys
import time

import torch
from torch import nn

from torch_mnist import idx


def run(seed, threads):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU(),
                          nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid(),
                          nn.Unflatten(1, (1, 28, 28)))
    x = torch.tensor(idx("train-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    tx = torch.tensor(idx("t10k-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    seconds = 0.0
    for _ in range(10):
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), 64):
            b = x[order[i:i + 64]]
            opt.zero_grad()
            nn.functional.mse_loss(model(b), b).backward()
            opt.step()
        seconds += time.perf_counter() - start
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(tx), tx).item()
    return loss, 10 * len(x) / seconds


if __name__ == "__main__":
    seeds = sys.argv[1] if len(sys.argv) > 1 else "1"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
    for s in seeds.split(","):
        loss, rate = run(int(s), threads)
        print(f"seed {s}: test loss {loss:.4f}, {rate:.0f} samples/s ({threads} threads)", flush=True)
