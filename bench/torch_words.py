"""The PyTorch twins of examples/words_transformer.soma (the same encoder: embedding 64x32, learned
positions, 4-head self-attention with bias-free projections that no letter position after the
word's end is attended to, post-norm, a ReLU feed-forward of 64, the mean over the word's letters,
a dense layer to 5 languages) and examples/words_conv1d.soma
(embedding, two Conv1d of 64 filters of 3 with "same" padding and ReLU, the maximum over the
letters, a dense layer) and examples/words_lstm.soma and words_gru.soma (embedding, an LSTM of 64
or a bidirectional GRU of 48 over the 16 letters, its last states, a dense layer), Adam lr 0.002,
batch 64, 10 epochs; prints the test accuracy and the
training samples per second. Reads data/words (scripts/make_words.py).
Usage: /usr/bin/python3 bench/torch_words.py [transformer|conv1d|lstm|gru] [SEEDS, e.g. 1,2,3] [THREADS]"""
import os
import sys

import numpy as np
import torch
from torch import nn

from torch_mnist import timed_epochs

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "words")


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x, letter):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(2, 3) / (d // self.heads) ** 0.5 + (letter[:, None, None, :] - 1) * 1e9
        w = torch.softmax(scores, dim=-1)
        return self.o((w @ v).transpose(1, 2).reshape(b, t, d))


class Language(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(64, 32)
        self.pos = nn.Parameter(torch.randn(16, 32) * 0.1)
        self.att = Attention(32, 4)
        self.norm1, self.norm2 = nn.LayerNorm(32), nn.LayerNorm(32)
        self.ff = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.out = nn.Linear(32, 5)

    def forward(self, ids):
        letter = (ids > 0).float()  # 0 after the word's end
        x = self.embed(ids) + self.pos
        a = self.norm1(x + self.att(x, letter))
        h = self.norm2(a + self.ff(a)) * letter[:, :, None]
        return self.out(h.sum(1) / letter.sum(1, keepdim=True))


class Letters(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(64, 32)
        self.convs = nn.Sequential(nn.Conv1d(32, 64, 3, padding="same"), nn.ReLU(),
                                   nn.Conv1d(64, 64, 3, padding="same"), nn.ReLU())
        self.out = nn.Linear(64, 5)

    def forward(self, ids):
        return self.out(self.convs(self.embed(ids).transpose(1, 2)).amax(2))


class Recurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.embed = nn.Embedding(64, 32)
        self.cell = nn.LSTM(32, 64, batch_first=True) if kind == "lstm" else nn.GRU(
            32, 48, batch_first=True, bidirectional=True)
        self.out = nn.Linear(64 if kind == "lstm" else 96, 5)

    def forward(self, ids):
        _, last = self.cell(self.embed(ids))
        last = last[0] if isinstance(last, tuple) else last  # the LSTM's (h, c)
        return self.out(torch.cat(list(last), 1))


def run(kind, seed, threads):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    load = lambda name: torch.tensor(np.load(os.path.join(root, name)))
    x, y = load("train-letters.npy").long(), load("train-languages.npy")
    tx, ty = load("test-letters.npy").long(), load("test-languages.npy")
    model = {"transformer": Language, "conv1d": Letters}.get(kind, lambda: Recurrent(kind))()
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    rate = timed_epochs(model, opt, x, y, nn.functional.cross_entropy, 10, 64)
    with torch.no_grad():
        accuracy = (model(tx).argmax(1) == ty).float().mean().item()
    return accuracy, rate


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "transformer"
    seeds = sys.argv[2] if len(sys.argv) > 2 else "1"
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else torch.get_num_threads()
    for s in seeds.split(","):
        accuracy, rate = run(kind, int(s), threads)
        print(f"seed {s}: test accuracy {accuracy * 100:.2f}%, {rate:.0f} samples/s ({threads} threads)", flush=True)
