"""For the autoencoder's test, with the standard library only: `write DIR` puts the first five
held-out MNIST digits into DIR/x.npy, [5, 1, 28, 28] float32 (pixels over 255, as Soma reads
IDX); `check DIR` prints the shape of DIR/out.npy and its mean squared error against x.npy."""
import os
import struct
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "data", "mnist")


def read_npy(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + n].decode("latin1")
    shape = tuple(int(d) for d in header[header.index("(") + 1:header.index(")")].split(",") if d.strip())
    count = len(raw[10 + n:]) // 4
    return shape, struct.unpack(f"<{count}f", raw[10 + n:])


mode, folder = sys.argv[1], sys.argv[2]
if mode == "write":
    raw = open(os.path.join(root, "t10k-images-idx3-ubyte"), "rb").read()
    pixels = [b / 255 for b in raw[16:16 + 5 * 784]]
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 1, 28, 28), }"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    open(os.path.join(folder, "x.npy"), "wb").write(data + struct.pack(f"<{len(pixels)}f", *pixels))
else:
    shape, out = read_npy(os.path.join(folder, "out.npy"))
    _, x = read_npy(os.path.join(folder, "x.npy"))
    mse = sum((a - b) ** 2 for a, b in zip(out, x)) / len(x)
    print(f"shape {shape}, reconstruction error {'below' if mse < 0.03 else 'ABOVE'} 0.03 ({mse:.4f})")
