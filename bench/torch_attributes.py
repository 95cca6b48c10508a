"""The PyTorch twin of examples/mnist_attributes.soma: four yes-or-no facts a digit (odd, at least
5, prime, a closed loop), 784-128 ReLU-4 with BCEWithLogitsLoss (Soma computes binary
cross-entropy from the logits before the sigmoid), Adam lr 0.002, batch 64, 8 epochs; prints the
test accuracy per answer (as Keras' binary_accuracy) and the training samples per second.
Usage: /usr/bin/python3 bench/torch_attributes.py [SEEDS, e.g. 1,2,3] [THREADS]"""
import sys

import torch
from torch import nn

from torch_mnist import idx, timed_epochs


def facts(digits):
    d = digits.long()
    return torch.stack([d % 2 == 1, d >= 5, (d == 2) | (d == 3) | (d == 5) | (d == 7),
                        (d == 0) | (d == 6) | (d == 8) | (d == 9)], 1).float()


def run(seed, threads):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 4))
    x = torch.tensor(idx("train-images-idx3-ubyte"), dtype=torch.float32) / 255
    y = facts(torch.tensor(idx("train-labels-idx1-ubyte")))
    tx = torch.tensor(idx("t10k-images-idx3-ubyte"), dtype=torch.float32) / 255
    ty = facts(torch.tensor(idx("t10k-labels-idx1-ubyte")))
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    rate = timed_epochs(model, opt, x, y, nn.functional.binary_cross_entropy_with_logits, 8, 64)
    with torch.no_grad():
        accuracy = ((model(tx) >= 0).float() == ty).float().mean().item()
    return accuracy, rate


if __name__ == "__main__":
    seeds = sys.argv[1] if len(sys.argv) > 1 else "1"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
    for s in seeds.split(","):
        accuracy, rate = run(int(s), threads)
        print(f"seed {s}: test accuracy {accuracy * 100:.2f}% per answer, {rate:.0f} samples/s ({threads} threads)",
              flush=True)
