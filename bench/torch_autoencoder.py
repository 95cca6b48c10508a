"""The PyTorch twin of examples/mnist_autoencoder.soma: the same layers, initialization rule
(PyTorch's own), Adam lr 0.002, batch 64, 10 epochs of shuffled batches; prints the test loss
(the mean squared error per pixel) after the last epoch and the training samples per second.
Usage: /usr/bin/python3 bench/torch_autoencoder.py [SEEDS, e.g. 1,2,3] [THREADS]"""
import sys

import torch
from torch import nn

from torch_mnist import idx, timed_epochs


def run(seed, threads):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU(),
                          nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid(),
                          nn.Unflatten(1, (1, 28, 28)))
    x = torch.tensor(idx("train-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    tx = torch.tensor(idx("t10k-images-idx3-ubyte"), dtype=torch.float32).unsqueeze(1) / 255
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    rate = timed_epochs(model, opt, x, None, nn.functional.mse_loss, 10, 64)
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(tx), tx).item()
    return loss, rate


if __name__ == "__main__":
    seeds = sys.argv[1] if len(sys.argv) > 1 else "1"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
    for s in seeds.split(","):
        loss, rate = run(int(s), threads)
        print(f"seed {s}: test loss {loss:.4f}, {rate:.0f} samples/s ({threads} threads)", flush=True)
