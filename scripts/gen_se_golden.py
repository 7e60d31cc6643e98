#!/usr/bin/python3
"""Write the SE block golden data that se/block_test.go checks the Go SE block against.

Each case is a small PyTorch SE block (nn.Conv2d 1x1 or nn.Linear excitation, ReLU or SiLU,
sigmoid or hard-sigmoid gate) with fixed random weights and a fixed random input U. The script
writes, per case, one little-endian float32 file <name>.bin holding the tensors listed in
manifest.json (each with its offset in float32 values and its PyTorch shape), and manifest.json.

Run from the repository root with Debian's torch:

    /usr/bin/python3 scripts/gen_se_golden.py [--out se/testdata/golden]

The output is deterministic for a given torch build (fixed seeds, CPU, float32).
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# name, channels, reduction r, batch, height, width, layout, activation, gate, alpha, beta
CASES = [
    ("sigmoid_relu_conv_r4_n1_7x7", 32, 4, 1, 7, 7, "conv1x1", "relu", "sigmoid", 0.0, 0.0),
    ("sigmoid_relu_linear_r16_n5_6x10", 64, 16, 5, 6, 10, "linear", "relu", "sigmoid", 0.0, 0.0),
    ("hardsigmoid_relu_conv_r4_n5_6x10", 16, 4, 5, 6, 10, "conv1x1", "relu", "hard_sigmoid", 1 / 6, 0.5),
    ("hardsigmoid_relu_linear_r16_n1_7x7", 32, 16, 1, 7, 7, "linear", "relu", "hard_sigmoid", 1 / 6, 0.5),
    ("sigmoid_silu_conv_r16_n5_7x7", 32, 16, 5, 7, 7, "conv1x1", "silu", "sigmoid", 0.0, 0.0),
    ("sigmoid_silu_linear_r4_n1_6x10", 24, 4, 1, 6, 10, "linear", "silu", "sigmoid", 0.0, 0.0),
    # ONNX's HardSigmoid defaults (alpha 0.2, beta 0.5), to exercise the parameters.
    ("hardsigmoid02_silu_conv_r16_n1_6x10", 64, 16, 1, 6, 10, "conv1x1", "silu", "hard_sigmoid", 0.2, 0.5),
    ("hardsigmoid_silu_linear_r4_n5_7x7", 16, 4, 5, 7, 7, "linear", "silu", "hard_sigmoid", 1 / 6, 0.5),
    # A tall map (H > W) and a 1x1 map.
    ("sigmoid_relu_conv_r4_n5_10x3", 16, 4, 5, 10, 3, "conv1x1", "relu", "sigmoid", 0.0, 0.0),
    ("sigmoid_relu_linear_r4_n5_1x1", 16, 4, 5, 1, 1, "linear", "relu", "sigmoid", 0.0, 0.0),
]


class SE(nn.Module):
    """The SE block of Hu et al. with true global average pooling over all H x W positions."""

    def __init__(self, channels, hidden, layout, act, gate, alpha, beta):
        super().__init__()
        if layout == "conv1x1":
            self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
            self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        else:
            self.fc1 = nn.Linear(channels, hidden)
            self.fc2 = nn.Linear(hidden, channels)
        self.layout, self.act, self.gate = layout, act, gate
        self.alpha, self.beta = alpha, beta

    def forward(self, u):
        n, c = u.shape[0], u.shape[1]
        z = F.adaptive_avg_pool2d(u, 1)  # N x C x 1 x 1, mean over all H*W
        if self.layout == "linear":
            z = z.flatten(1)
        x = self.fc1(z)
        x = F.relu(x) if self.act == "relu" else F.silu(x)
        x = self.fc2(x)
        if self.gate == "sigmoid":
            s = torch.sigmoid(x)
        elif abs(self.alpha - 1 / 6) < 1e-12 and self.beta == 0.5:
            s = F.hardsigmoid(x)
        else:
            s = torch.clamp(self.alpha * x + self.beta, 0.0, 1.0)
        s = s.reshape(n, c, 1, 1)
        return u * s, s.reshape(n, c)


def make_case(index, name, channels, r, n, h, w, layout, act, gate, alpha, beta):
    torch.manual_seed(1000 + index)
    hidden = channels // r
    block = SE(channels, hidden, layout, act, gate, alpha, beta)
    with torch.no_grad():
        # Spread the gates over (0, 1), including saturated hard-sigmoid gates.
        block.fc2.weight.mul_(4.0)
        block.fc2.bias.copy_(torch.randn(channels) * 2.0)
        offsets = torch.randn(1, channels, 1, 1) * 2.0
        u = torch.randn(n, channels, h, w) + offsets
        out, gates = block(u)
    tensors = [
        ("u", u),
        ("w1", block.fc1.weight),
        ("b1", block.fc1.bias),
        ("w2", block.fc2.weight),
        ("b2", block.fc2.bias),
        ("gates", gates),
        ("out", out),
    ]
    entries, blobs, offset = [], [], 0
    for tname, t in tensors:
        a = t.detach().contiguous().numpy().astype("<f4")
        entries.append({"name": tname, "shape": list(a.shape), "offset": offset})
        blobs.append(a.tobytes())
        offset += a.size
    meta = {
        "name": name,
        "file": name + ".bin",
        "channels": channels,
        "hidden": hidden,
        "batch": n,
        "height": h,
        "width": w,
        "layout": layout,
        "activation": act,
        "gate": gate,
        "alpha": alpha,
        "beta": beta,
        "tensors": entries,
    }
    return meta, b"".join(blobs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="se/testdata/golden")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    cases = []
    for i, c in enumerate(CASES):
        meta, blob = make_case(i, *c)
        with open(os.path.join(args.out, meta["file"]), "wb") as f:
            f.write(blob)
        cases.append(meta)
    manifest = {
        "format": "little-endian float32; each tensor at offset (in float32 values) with its PyTorch shape",
        "torch": torch.__version__,
        "cases": cases,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
