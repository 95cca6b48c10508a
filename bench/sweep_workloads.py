"""The sweep's workloads, each once: its Soma layers (the model block's lines after the input) and
the same network for PyTorch (a function of torch.nn, so that this file loads without torch).
Every model ends in softmax with cross-entropy over `classes`."""


def _recurrent(nn, layers, width):
    """A PyTorch stack of batch-first recurrent modules, each returning its sequences but the last,
    whose final states (both directions side by side) a Linear layer to 10 classes reads."""

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(layers)
            self.out = nn.Linear(width, 10)

        def forward(self, x):
            import torch  # here, so that this file loads without torch

            for layer in self.layers[:-1]:
                x, _ = layer(x)
            _, last = self.layers[-1](x)
            last = last[0] if isinstance(last, tuple) else last  # an LSTM's (h, c)
            return self.out(torch.cat(list(last), 1))

    return Recurrent()


WORKLOADS = [
    {"name": "S1", "recipe": "3 conv 3x3 stride 2 (3-32-64-128) + batchnorm, global avg pool, Adam, [3, 32, 32], batch 64",
     "input": [3, 32, 32], "classes": 10, "samples": 2048, "batch": 64, "epochs": 4, "optimizer": "adam(lr: 0.001)",
     "soma": ["conv2d(32, 3, stride: 2, padding: 1)", "batchnorm", "relu", "conv2d(64, 3, stride: 2, padding: 1)",
              "batchnorm", "relu", "conv2d(128, 3, stride: 2, padding: 1)", "batchnorm", "relu", "global_avgpool",
              "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64),
         nn.ReLU(), nn.Conv2d(64, 128, 3, 2, 1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
         nn.Linear(128, 10))},
    {"name": "S2", "recipe": "conv 3x3 (1-16) + batchnorm on 28x28, max pool, conv 3x3 (16-32) + batchnorm, SGD momentum, batch 64",
     "input": [1, 28, 28], "classes": 10, "samples": 4096, "batch": 64, "epochs": 4,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["conv2d(16, 3, padding: 1)", "batchnorm", "relu", "maxpool2d(2)", "conv2d(32, 3, padding: 1)",
              "batchnorm", "relu", "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
         nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))},
    {"name": "S3", "recipe": "784-512 layernorm gelu dropout 0.1, -10, Adam, batch 64",
     "input": [784], "classes": 10, "samples": 8192, "batch": 64, "epochs": 4, "optimizer": "adam(lr: 0.001)",
     "soma": ["dense(512)", "layernorm", "gelu", "dropout(0.1)", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(nn.Linear(784, 512), nn.LayerNorm(512), nn.GELU(), nn.Dropout(0.1),
                                       nn.Linear(512, 10))},
    {"name": "S4", "recipe": "VGG-style: conv 3x3 32-32, pool, 64-64, pool, 128, pool, dense 256, [3, 32, 32], SGD momentum, batch 64",
     "input": [3, 32, 32], "classes": 10, "samples": 1024, "batch": 64, "epochs": 3,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["conv2d(32, 3, padding: 1) -> relu", "conv2d(32, 3, padding: 1) -> relu", "maxpool2d(2)",
              "conv2d(64, 3, padding: 1) -> relu", "conv2d(64, 3, padding: 1) -> relu", "maxpool2d(2)",
              "conv2d(128, 3, padding: 1) -> relu", "maxpool2d(2)", "flatten", "dense(256) -> relu",
              "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
         nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 256), nn.ReLU(),
         nn.Linear(256, 10))},
    {"name": "S5", "recipe": "MLP 1024-2048-2048-10 ReLU, Adam, batch 256",
     "input": [1024], "classes": 10, "samples": 4096, "batch": 256, "epochs": 3, "optimizer": "adam(lr: 0.001)",
     "soma": ["dense(2048) -> relu", "dense(2048) -> relu", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(nn.Linear(1024, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(),
                                       nn.Linear(2048, 10))},
    {"name": "S6", "recipe": "1x1 convolutions 16-128-64 on [16, 16, 16], global avg pool, SGD, batch 64",
     "input": [16, 16, 16], "classes": 10, "samples": 4096, "batch": 64, "epochs": 4, "optimizer": "sgd(lr: 0.05)",
     "soma": ["conv2d(128, 1) -> relu", "conv2d(64, 1) -> relu", "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(nn.Conv2d(16, 128, 1), nn.ReLU(), nn.Conv2d(128, 64, 1), nn.ReLU(),
                                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))},
    {"name": "S7", "recipe": "ResNet-style stem: conv 7x7 stride 2 (3-32) + batchnorm, max pool, conv 3x3 (32-64), [3, 64, 64], SGD momentum, batch 32",
     "input": [3, 64, 64], "classes": 10, "samples": 1024, "batch": 32, "epochs": 3,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["conv2d(32, 7, stride: 2, padding: 3)", "batchnorm", "relu", "maxpool2d(2)",
              "conv2d(64, 3, padding: 1) -> relu", "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 32, 7, 2, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))},
    {"name": "S8", "recipe": "784-256-10 ReLU, SGD, batch 1024",
     "input": [784], "classes": 10, "samples": 16384, "batch": 1024, "epochs": 6, "optimizer": "sgd(lr: 0.1)",
     "soma": ["dense(256) -> relu", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))},
    {"name": "S9", "recipe": "256-512-512-10 tanh, SGD momentum, batch 32",
     "input": [256], "classes": 10, "samples": 8192, "batch": 32, "epochs": 4,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["dense(512) -> tanh", "dense(512) -> tanh", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(nn.Linear(256, 512), nn.Tanh(), nn.Linear(512, 512), nn.Tanh(),
                                       nn.Linear(512, 10))},
    {"name": "S10", "recipe": "3 conv 3x3 (3-16-32-32) without pooling on [3, 32, 32], global avg pool, Adam, batch 64",
     "input": [3, 32, 32], "classes": 10, "samples": 1024, "batch": 64, "epochs": 3, "optimizer": "adam(lr: 0.001)",
     "soma": ["conv2d(16, 3, padding: 1) -> relu", "conv2d(32, 3, padding: 1) -> relu",
              "conv2d(32, 3, padding: 1) -> relu", "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))},
    {"name": "S11", "recipe": "ResNet stem as torchvision's: conv 7x7 stride 2 (3-32) + batchnorm, max pool 3x3 stride 2 padding 1, conv 3x3 (32-32) x2, [3, 64, 64], SGD momentum, batch 32",
     "input": [3, 64, 64], "classes": 10, "samples": 1024, "batch": 32, "epochs": 3,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["conv2d(32, 7, stride: 2, padding: 3)", "batchnorm", "relu", "maxpool2d(3, stride: 2, padding: 1)",
              "conv2d(32, 3, padding: 1)", "batchnorm", "relu", "conv2d(32, 3, padding: 1)", "batchnorm", "relu",
              "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 32, 7, 2, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
         nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
         nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))},
    {"name": "S12", "recipe": "MobileNet blocks: conv 3x3 stride 2 (3-32), then depthwise 3x3 (stride 1, then 2) + pointwise 1x1 (32-64, 64-128), each with batchnorm and ReLU6, [3, 32, 32], Adam, batch 64",
     "input": [3, 32, 32], "classes": 10, "samples": 2048, "batch": 64, "epochs": 3,
     "optimizer": "adam(lr: 0.001)",
     "soma": ["conv2d(32, 3, stride: 2, padding: 1)", "batchnorm", "relu -> minimum(6)",
              "conv2d(32, 3, padding: 1, groups: 32)", "batchnorm", "relu -> minimum(6)",
              "conv2d(64, 1)", "batchnorm", "relu -> minimum(6)",
              "conv2d(64, 3, stride: 2, padding: 1, groups: 64)", "batchnorm", "relu -> minimum(6)",
              "conv2d(128, 1)", "batchnorm", "relu -> minimum(6)",
              "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU6(),
         nn.Conv2d(32, 32, 3, 1, 1, groups=32), nn.BatchNorm2d(32), nn.ReLU6(),
         nn.Conv2d(32, 64, 1), nn.BatchNorm2d(64), nn.ReLU6(),
         nn.Conv2d(64, 64, 3, 2, 1, groups=64), nn.BatchNorm2d(64), nn.ReLU6(),
         nn.Conv2d(64, 128, 1), nn.BatchNorm2d(128), nn.ReLU6(),
         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))},
    {"name": "S13", "recipe": "dilated 3x3 convolutions as DeepLab's context module: 3-32, then 32-32 at dilations 2, 4 and 8 (padding = dilation) + batchnorm, [3, 32, 32], Adam, batch 32",
     "input": [3, 32, 32], "classes": 10, "samples": 1024, "batch": 32, "epochs": 3,
     "optimizer": "adam(lr: 0.001)",
     "soma": ["conv2d(32, 3, padding: 1)", "batchnorm", "relu",
              "conv2d(32, 3, dilation: 2, padding: 2)", "batchnorm", "relu",
              "conv2d(32, 3, dilation: 4, padding: 4)", "batchnorm", "relu",
              "conv2d(32, 3, dilation: 8, padding: 8)", "batchnorm", "relu",
              "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
         nn.Conv2d(32, 32, 3, dilation=2, padding=2), nn.BatchNorm2d(32), nn.ReLU(),
         nn.Conv2d(32, 32, 3, dilation=4, padding=4), nn.BatchNorm2d(32), nn.ReLU(),
         nn.Conv2d(32, 32, 3, dilation=8, padding=8), nn.BatchNorm2d(32), nn.ReLU(),
         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))},
    {"name": "S14", "recipe": "ResNeXt-style grouped 3x3 convolutions: conv 3x3 (3-64), then 64-64 in 8 groups at stride 1 and 2, each between 1x1 convolutions, batchnorm, [3, 32, 32], SGD momentum, batch 64",
     "input": [3, 32, 32], "classes": 10, "samples": 1024, "batch": 64, "epochs": 3,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["conv2d(64, 3, padding: 1)", "batchnorm", "relu",
              "conv2d(64, 3, padding: 1, groups: 8)", "batchnorm", "relu", "conv2d(64, 1)", "batchnorm", "relu",
              "conv2d(64, 3, stride: 2, padding: 1, groups: 8)", "batchnorm", "relu", "conv2d(128, 1)", "batchnorm", "relu",
              "global_avgpool", "dense(10) -> softmax"],
     "torch": lambda nn: nn.Sequential(
         nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
         nn.Conv2d(64, 64, 3, padding=1, groups=8), nn.BatchNorm2d(64), nn.ReLU(),
         nn.Conv2d(64, 64, 1), nn.BatchNorm2d(64), nn.ReLU(),
         nn.Conv2d(64, 64, 3, 2, 1, groups=8), nn.BatchNorm2d(64), nn.ReLU(),
         nn.Conv2d(64, 128, 1), nn.BatchNorm2d(128), nn.ReLU(),
         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))},
    {"name": "S15", "recipe": "LSTM 64 over [50, 32] sequences, its last state, dense 10, Adam, batch 64",
     "input": [50, 32], "classes": 10, "samples": 2048, "batch": 64, "epochs": 3, "optimizer": "adam(lr: 0.001)",
     "soma": ["lstm(64)", "dense(10) -> softmax"],
     "torch": lambda nn: _recurrent(nn, [nn.LSTM(32, 64, batch_first=True)], 64)},
    {"name": "S16", "recipe": "bidirectional GRU 64 returning its sequences, then GRU 64, over [100, 16], dense 10, SGD momentum, batch 32",
     "input": [100, 16], "classes": 10, "samples": 1024, "batch": 32, "epochs": 3,
     "optimizer": "sgd(lr: 0.01, momentum: 0.9)",
     "soma": ["gru(64, return_sequences: true, bidirectional: true)", "gru(64)", "dense(10) -> softmax"],
     "torch": lambda nn: _recurrent(nn, [nn.GRU(16, 64, batch_first=True, bidirectional=True),
                                         nn.GRU(128, 64, batch_first=True)], 64)},
]
