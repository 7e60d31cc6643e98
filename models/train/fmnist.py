"""Fashion-MNIST from Debian's dataset-fashion-mnist package, read from the idx files with numpy."""

import gzip
import os

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"

LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _read_idx(path, magic, dims):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        raise ValueError(f"{path}: idx magic {got:#x}, want {magic:#x}")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says {shape}")
    return data.reshape(shape)


def load(split, data_dir=DATA_DIR):
    """Returns (images uint8 N x 28 x 28, labels uint8 N) for split "train" or "t10k"."""
    images = _read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"), 0x00000803, 3)
    labels = _read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"), 0x00000801, 1)
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels
