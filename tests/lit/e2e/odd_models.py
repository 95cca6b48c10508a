"""Valid models with odd shapes, drawn from a seeded generator: 1x1 images, kernels as large as
the padded image, strides past it, dense(1), batches of 1 and batches larger than the data, every
layer, loss and optimizer. Each trains one epoch (`soma run`) and has its gradients checked by
finite differences (`soma gradcheck`); none may fail, crash or print a NaN.
Usage: odd_models.py SOMA DIR COUNT SEED"""
import os
import random
import struct
import subprocess
import sys

soma, out, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if os.environ.get("SOMA_LIT_QUICK"):
    count = min(count, 12)
rng = random.Random(seed)
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "identity"]
OPTIMIZERS = ["sgd(lr: 0.05)", "sgd(lr: 0.05, momentum: 0.9, nesterov: true)", "adam(lr: 0.01)",
              "adamw(lr: 0.01, weight_decay: 0.01)", "rmsprop(lr: 0.01)", "adagrad(lr: 0.05)",
              "sgd(lr: 0.05, momentum: 0.5, weight_decay: 0.001)"]


def npy(path, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)


def image_layers(c, h, w):
    """Convolutions and pooling that keep a valid shape; returns the lines and the final shape."""
    lines = []
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if choice < 0.6:
            pad = rng.choice([0, 0, 1, 2])
            k = rng.randint(1, min(h, w) + 2 * pad)
            stride = rng.choice([1, 1, 2, 3, 5])
            filters = rng.choice([1, 2, 5])
            lines.append(f"conv2d({filters}, {k}, stride: {stride}, padding: {pad})")
            h, w, c = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1, filters
            if rng.random() < 0.4:
                lines.append("batchnorm")
            lines.append(rng.choice(ACTIVATIONS))
        elif choice < 0.8:
            sizes = [s for s in (2, 3) if h % s == 0 and w % s == 0]
            if sizes:
                s = rng.choice(sizes)
                lines.append(f"{rng.choice(['maxpool2d', 'avgpool2d'])}({s})")
                h, w = h // s, w // s
        else:
            lines.append(f"dropout({rng.choice([0.1, 0.5])})")
    if rng.random() < 0.3:
        lines.append("global_avgpool")
        return lines, [c]
    lines.append("flatten")
    return lines, [c * h * w]


def model(i):
    c, h, w = rng.choice([1, 2, 3]), rng.randint(1, 9), rng.randint(1, 9)
    lines, _ = image_layers(c, h, w)
    for _ in range(rng.randint(0, 2)):
        lines.append(f"dense({rng.choice([1, 2, 7])}) -> {rng.choice(ACTIVATIONS)}")
        if rng.random() < 0.3:
            lines.append("layernorm")
    task = rng.choice(["classes", "binary", "mse", "mae", "huber"])
    classes = rng.choice([2, 3]) if task == "classes" else 2
    if task == "classes":
        lines.append(f"dense({classes}) -> softmax")
        loss = "cross_entropy(label)"
    elif task == "binary":
        lines.append("dense(1) -> sigmoid")
        loss = "binary_cross_entropy(label)"
    else:
        lines.append("dense(1)")
        loss = {"mse": "mse(label)", "mae": "mae(label)", "huber": "huber(label, delta: 0.5)"}[task]
    n = rng.choice([1, 5, 12])
    batch = rng.choice([1, 3, 4, 50])
    xs = [rng.uniform(-1, 1) for _ in range(n * c * h * w)]
    ys = [float(rng.randrange(classes)) for _ in range(n)]
    x_path, y_path = os.path.join(out, f"m{i}-x.npy"), os.path.join(out, f"m{i}-y.npy")
    npy(x_path, "<f4", f"({n}, {c}, {h}, {w})", struct.pack(f"<{len(xs)}f", *xs))
    npy(y_path, "<f4", f"({n},)", struct.pack(f"<{n}f", *ys))
    text = (f"model M{i} {{\n  input image: f32[{c}, {h}, {w}]\n" + "".join(f"  {l}\n" for l in lines) + "}\n"
            f"train M{i} {{\n  data train = npy(\"{x_path}\", \"{y_path}\")\n  loss = {loss}\n"
            f"  optimizer = {rng.choice(OPTIMIZERS)}\n  batch = {batch}\n  epochs = 1\n  seed = {i}\n}}\n")
    path = os.path.join(out, f"m{i}.soma")
    with open(path, "w") as f:
        f.write(text)
    return path, text


failures = 0
for i in range(count):
    path, text = model(i)
    for cmd in ([soma, "run", path, "--no-progress"], [soma, "gradcheck", path]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        output = r.stdout + r.stderr
        if r.returncode != 0 or "nan" in output.lower():
            failures += 1
            print(f"FAILED: {' '.join(cmd)} (exit {r.returncode})\n{text}{output}")
print(f"{count} odd models: {failures} failures")
sys.exit(1 if failures else 0)
