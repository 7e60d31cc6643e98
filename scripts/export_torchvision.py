#!/usr/bin/python3
"""Export ONNX fixtures for sestream's model and SE discovery tests.

Usage: /usr/bin/python3 scripts/export_torchvision.py OUTDIR [NAME ...]

NAME is one of the torchvision models below or "tiny_se"; with no NAME all are exported.
Torchvision models get random weights (weights=None, seed 0), a 1x3x224x224 example input,
opset 13 and a dynamic batch axis named "batch". Input is "images", output "logits".

tiny_se is a small net with three SE blocks in three export forms (Conv 1x1 + ReLU + Sigmoid,
Gemm + SiLU + HardSigmoid, MatMul + ReLU + Sigmoid), plus a SiLU and a hard-swish outside any
SE block. Beside tiny_se.onnx the script writes tiny_se_weights.json with each block's weights
in se.Block layout (W1 Hidden x C, W2 C x Hidden, row-major), in network order.

Files are written to a temporary name and renamed, so an interrupted run (or two runs at once)
leaves no partial file.
"""

import json
import os
import sys

import onnx
import torch
import torch.nn as nn
import torchvision

OPSET = 13
TORCHVISION = ["mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf", "resnet18"]


class ConvSE(nn.Module):
    """SE block as torchvision writes it: pool, Conv 1x1, ReLU, Conv 1x1, Sigmoid, scale."""

    def __init__(self, c, hidden):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, hidden, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))

    def weights(self):
        h, c = self.fc1.weight.shape[:2]
        return block_json(self.fc1.weight.reshape(h, c), self.fc1.bias,
                          self.fc2.weight.reshape(c, h), self.fc2.bias, "relu", "sigmoid")


class GemmSE(nn.Module):
    """SE block with linear layers on a 2-D squeeze: exports as ReduceMean, Gemm, SiLU, Gemm, HardSigmoid."""

    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, c)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        n, c = x.shape[0], x.shape[1]
        s = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3))))))
        return x * s.view(n, c, 1, 1)

    def weights(self):
        return block_json(self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, "silu", "hard_sigmoid")


class MatMulSE(nn.Module):
    """SE block with linear layers on a 3-D squeeze: exports as ReduceMean, Unsqueeze, MatMul+Add, ..."""

    def __init__(self, c, hidden):
        super().__init__()
        self.c = c
        self.fc1 = nn.Linear(c, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, c)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        z = x.mean((2, 3)).unsqueeze(1)
        s = self.gate(self.fc2(self.act(self.fc1(z))))
        return x * s.reshape(-1, self.c, 1, 1)

    def weights(self):
        return block_json(self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, "relu", "sigmoid")


class TinySE(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.se1 = ConvSE(8, 2)
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.silu = nn.SiLU()  # x * sigmoid(x): not an SE block
        self.se2 = GemmSE(16, 4)
        self.hswish = nn.Hardswish()  # x * hardsigmoid(x): not an SE block
        self.se3 = MatMulSE(16, 8)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.se1(self.stem(x))
        x = self.se2(self.silu(self.conv(x)))
        x = self.se3(self.hswish(x))
        return self.head(x.mean((2, 3)))

    def blocks(self):
        return [self.se1, self.se2, self.se3]


def block_json(w1, b1, w2, b2, act, gate):
    hidden, c = w1.shape
    assert tuple(w2.shape) == (c, hidden)
    flat = lambda t: [float(v) for v in t.detach().reshape(-1)]
    return {"channels": int(c), "hidden": int(hidden), "w1": flat(w1), "b1": flat(b1),
            "w2": flat(w2), "b2": flat(b2), "activation": act, "gate": gate}


def export(model, example, path):
    tmp = "%s.tmp%d" % (path, os.getpid())
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, example, tmp, opset_version=OPSET, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    return tmp


def export_torchvision(name, outdir):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    path = os.path.join(outdir, name + ".onnx")
    tmp = export(model, torch.randn(1, 3, 224, 224), path)
    os.replace(tmp, path)


def export_tiny(outdir):
    torch.manual_seed(0)
    model = TinySE()
    # Random biases far from zero so a swapped or dropped bias shows in the weights test.
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)
    path = os.path.join(outdir, "tiny_se.onnx")
    tmp = export(model, torch.randn(1, 3, 8, 10), path)
    m = onnx.load(tmp)
    meta = {
        "labels": json.dumps(["zero", "one", "two", "three", "four"]),
        "preprocess.width": "10",
        "preprocess.height": "8",
        "preprocess.color": "rgb",
        "preprocess.resize": "stretch",
        "preprocess.scale": repr(1 / 255),
        "preprocess.mean": json.dumps([0.485, 0.456, 0.406]),
        "preprocess.std": json.dumps([0.229, 0.224, 0.225]),
        "training.commit": "fixture",
    }
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(m, tmp)
    os.replace(tmp, path)
    weights = {"blocks": [b.weights() for b in model.blocks()]}
    wpath = os.path.join(outdir, "tiny_se_weights.json")
    wtmp = "%s.tmp%d" % (wpath, os.getpid())
    with open(wtmp, "w") as f:
        json.dump(weights, f, indent=1)
        f.write("\n")
    os.replace(wtmp, wpath)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    outdir, names = argv[1], argv[2:] or TORCHVISION + ["tiny_se"]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    for name in names:
        if name == "tiny_se":
            export_tiny(outdir)
        elif name in TORCHVISION:
            export_torchvision(name, outdir)
        else:
            sys.exit("unknown model %r (want one of %s or tiny_se)" % (name, ", ".join(TORCHVISION)))
        print(os.path.join(outdir, name + ".onnx"))


if __name__ == "__main__":
    main(sys.argv)
