# Builds in PyTorch a CNN with the convolution and pooling parameters Soma takes (strides and
# padding per axis, a depthwise convolution with two filters a channel, groups of four channels,
# dilations 2, [1, 2] and 3, the latter with "same" padding, factorized 1x3 filters, "same" padding of an
# even kernel, ResNet's 3x3 stride-2 padded max pooling, adaptive windows that are not one stride
# and adaptive windows larger than their input (3 x 3 to 4 x 5),
# ceil_mode's partial windows, padding left out of the divisor, rectangular windows and strides),
# writes its random weights as safetensors under Soma's names, a batch of inputs as .npy and
# PyTorch's outputs for them.
#   torch_cnn.py DIR   writes DIR/m.soma, DIR/w.safetensors, DIR/x.npy, DIR/expected.npy
import os
import sys

import numpy as np
import torch
from torch import nn

from safetensors_io import write_safetensors

out = sys.argv[1]
torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(2, 4, 3, stride=(1, 2), padding=(1, 3)), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 6, 1),
    nn.Conv2d(6, 12, 3, padding=1, groups=6), nn.ReLU6(), nn.Conv2d(12, 6, (3, 1), padding=(1, 0), groups=3),
    nn.Conv2d(6, 6, 3, padding=2, dilation=2), nn.Conv2d(6, 6, 3, padding=(1, 2), dilation=(1, 2)), nn.Conv2d(6, 6, 3, padding="same", dilation=3, groups=6),
    nn.Conv2d(6, 6, (1, 3), padding=(0, 1)), nn.Tanh(), nn.Conv2d(6, 6, 4, padding="same"), nn.AdaptiveAvgPool2d((4, 5)), nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    nn.MaxPool2d((2, 1), (1, 2), ceil_mode=True), nn.AvgPool2d(2, 1, 1, ceil_mode=True), nn.AdaptiveAvgPool2d((4, 5)), nn.Flatten(),
    nn.Linear(6 * 4 * 5, 3))
soma = """model M {
  input x: f32[2, 11, 13]
  conv2d(4, 3, stride: [1, 2], padding: [1, 3]) -> relu
  maxpool2d(3, stride: 2, padding: 1)
  conv2d(6, 1)
  conv2d(12, 3, padding: 1, groups: 6) -> relu -> minimum(6)
  conv2d(6, [3, 1], padding: [1, 0], groups: 3)
  conv2d(6, 3, padding: 2, dilation: 2)
  conv2d(6, 3, padding: [1, 2], dilation: [1, 2])
  conv2d(6, 3, padding: "same", dilation: 3, groups: 6)
  conv2d(6, [1, 3], padding: [0, 1]) -> tanh
  conv2d(6, 4, padding: "same")
  adaptive_avgpool2d([4, 5])
  avgpool2d(3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false)
  maxpool2d([2, 1], stride: [1, 2], ceil_mode: true)
  avgpool2d(2, stride: 1, padding: 1, ceil_mode: true)
  adaptive_avgpool2d([4, 5])
  flatten
  dense(3)
}
train M { data train = npy("x.npy", "y.npy") loss = cross_entropy(label) optimizer = sgd(lr: 0.1) }
"""
open(os.path.join(out, "m.soma"), "w").write(soma)

convs = [m for m in model if isinstance(m, nn.Conv2d)]
tensors = {}
for i, conv in enumerate(convs):
    tensors[f"conv2d_{i + 1}.w"], tensors[f"conv2d_{i + 1}.b"] = conv.weight, conv.bias
tensors["dense_1.w"], tensors["dense_1.b"] = model[-1].weight.t(), model[-1].bias
write_safetensors(os.path.join(out, "w.safetensors"), tensors)

x = torch.randn(5, 2, 11, 13)
np.save(os.path.join(out, "x.npy"), x.numpy().astype("<f4"))
np.save(os.path.join(out, "y.npy"), np.arange(5).astype("<i8") % 3)
with torch.no_grad():
    np.save(os.path.join(out, "expected.npy"), model(x).numpy().astype("<f4"))
