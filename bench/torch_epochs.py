"""The timed PyTorch training loop both benchmark scripts use (torch_workloads.py, torch_sweep.py):
shuffled mini-batches, each step's forward, backward and update timed, samples/s per epoch."""
import time

import torch


def train_epochs(model, loss_fn, opt, x, y, batch, epochs):
    """Samples/s of each epoch, and the median of those after the first (a warm-up)."""
    n = x.shape[0]
    rates = []
    for _ in range(epochs):
        order = torch.randperm(n)
        seconds = 0.0
        for start in range(0, n, batch):
            i = order[start:start + batch]
            xb, yb = x[i], y[i]
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            seconds += time.perf_counter() - t
        rates.append(n / seconds)
    counted = sorted(rates[1:])
    return rates, counted[len(counted) // 2]
