# Builds in PyTorch a stack of recurrent layers with the options Soma takes (an LSTM returning its
# sequences in both directions, a GRU returning its sequences, a bidirectional ReLU RNN returning
# its last states, a dense layer), writes its random weights as safetensors under Soma's names,
# a batch of sequences as .npy with their labels, PyTorch's outputs for them, and the weights after
# one SGD step on the batch's mean cross-entropy.
#   torch_rnn.py DIR            writes DIR/m.soma, DIR/w.safetensors, DIR/x.npy, DIR/y.npy,
#                               DIR/expected.npy and DIR/stepped.safetensors
#   torch_rnn.py DIR --compare  compares DIR/after.safetensors (Soma's checkpoint after its one
#                               step) with DIR/stepped.safetensors: prints the largest difference
import os
import sys

import numpy as np
import torch
from torch import nn

from safetensors_io import read_safetensors, write_safetensors

out = sys.argv[1]


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(8, 5, batch_first=True)
        self.rnn = nn.RNN(5, 3, nonlinearity="relu", batch_first=True, bidirectional=True)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        _, last = self.rnn(h)  # [2, batch, 3]: the forward direction's last state, the reverse's
        return self.out(torch.cat([last[0], last[1]], 1))


def soma_weights(model):
    tensors = {}
    for layer, module in [("lstm_1", model.lstm), ("gru_1", model.gru), ("rnn_1", model.rnn)]:
        for suffix in ["", "_reverse"] if module.bidirectional else [""]:
            tensors[f"{layer}.w_ih{suffix}"] = getattr(module, "weight_ih_l0" + suffix).t()
            tensors[f"{layer}.w_hh{suffix}"] = getattr(module, "weight_hh_l0" + suffix).t()
            tensors[f"{layer}.b_ih{suffix}"] = getattr(module, "bias_ih_l0" + suffix)
            tensors[f"{layer}.b_hh{suffix}"] = getattr(module, "bias_hh_l0" + suffix)
    tensors["dense_1.w"], tensors["dense_1.b"] = model.out.weight.t(), model.out.bias
    return tensors


if len(sys.argv) > 2 and sys.argv[2] == "--compare":
    soma, torch_ = read_safetensors(os.path.join(out, "after.safetensors")), read_safetensors(
        os.path.join(out, "stepped.safetensors"))
    worst = max(float(abs(soma[k] - v).max()) for k, v in torch_.items())
    moved = min(float(abs(v - w).max()) for (k, v), w in zip(torch_.items(), read_safetensors(
        os.path.join(out, "w.safetensors")).values()))
    print(f"{len(torch_)} tensors, largest difference below 1e-5: {worst < 1e-5}, every tensor moved: {moved > 1e-4}")
    sys.exit(0)

torch.manual_seed(0)
model = Stack()
open(os.path.join(out, "m.soma"), "w").write("""model Stack {
  input x: f32[7, 3]
  lstm(4, return_sequences: true, bidirectional: true)
  gru(5, return_sequences: true)
  rnn(3, nonlinearity: "relu", bidirectional: true)
  dense(2)
}
train Stack {
  data train = npy("x.npy", "y.npy")
  loss = cross_entropy(label)
  optimizer = sgd(lr: 0.5)
  batch = 6
  epochs = 1
}
""")
write_safetensors(os.path.join(out, "w.safetensors"), soma_weights(model))
x = torch.randn(6, 7, 3)
y = torch.tensor([0, 1, 1, 0, 1, 0])
np.save(os.path.join(out, "x.npy"), x.numpy().astype("<f4"))
np.save(os.path.join(out, "y.npy"), y.numpy().astype("<i8"))
with torch.no_grad():
    np.save(os.path.join(out, "expected.npy"), model(x).numpy().astype("<f4"))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
nn.functional.cross_entropy(model(x), y).backward()
opt.step()
write_safetensors(os.path.join(out, "stepped.safetensors"), soma_weights(model))
