#!/usr/bin/python3
"""Generates the engine's golden test data: tiny CNNs with SE blocks, their ONNX exports, inputs, and the
outputs and SE gates PyTorch computes for them.

    /usr/bin/python3 scripts/gen_engine_golden.py [OUT_DIR]   (default engine/testdata)

Everything is seeded, so a rerun writes the same numbers (up to PyTorch's own float nondeterminism, far below the
1e-4 the tests allow). Files written into OUT_DIR:

    <model>.onnx                     dynamic batch dimension "batch", fixed H x W
    input_<H>x<W>.npy                float32 N x 3 x H x W with N = MAX_BATCH; batch n uses its first n items
    <model>.b<n>.out<i>.npy          output i (in graph output order) of a batch-n run
    <model>.b<n>.gate<j>.npy         gate of SE block j (in network order) of a batch-n run, N x C
    <model>.b<n>.u0.npy              input U of SE block 0 (N x C x H x W), for the extra-outputs test; one
                                     model and batch only (u0_batch in the manifest), to keep the data small
    golden.json                      the manifest the Go tests read

The gates are the outputs of the gate Sigmoid / HardSigmoid modules, captured with forward hooks.
"""

import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_BATCH = 4
BATCHES = (1, 3, MAX_BATCH)
OPSET = 13


class ConvSE(nn.Module):
    """SE block in the original style: GlobalAveragePool -> Conv1x1 -> act -> Conv1x1 -> gate -> Mul."""

    def __init__(self, channels, hidden, gate):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = gate

    def forward(self, u):
        s = F.adaptive_avg_pool2d(u, 1)
        s = self.gate(self.fc2(self.act(self.fc1(s))))
        return u * s


class LinearSE(nn.Module):
    """SE block in the MLP style: GlobalAveragePool -> Flatten -> Linear -> SiLU -> Linear -> Sigmoid ->
    Unsqueeze -> Mul. (OpenCV 4.6 runs a ReduceMean squeeze only at the batch size pinned in the graph, and a
    Reshape to a traced batch size not at all, so neither is used here.)"""

    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, channels)
        self.gate = nn.Sigmoid()

    def forward(self, u):
        z = torch.flatten(F.adaptive_avg_pool2d(u, 1), 1)
        s = self.gate(self.fc2(self.act(self.fc1(z))))
        return u * s[:, :, None, None]


class SETiny(nn.Module):
    """Three conv stages, each followed by an SE block (sigmoid, hard-sigmoid, sigmoid); GAP + Linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.se1 = ConvSE(8, 4, nn.Sigmoid())
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.se2 = ConvSE(16, 4, nn.Hardsigmoid())
        self.conv3 = nn.Conv2d(16, 24, 3, stride=2, padding=1)
        self.se3 = ConvSE(24, 8, nn.Sigmoid())
        self.fc = nn.Linear(24, 10)

    def se_blocks(self):
        return [self.se1, self.se2, self.se3]

    def forward(self, x):
        x = self.se1(F.relu(self.conv1(x)))
        x = self.se2(F.relu(self.conv2(x)))
        x = self.se3(F.relu(self.conv3(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SERes(nn.Module):
    """Conv+BN stem, a residual block with an MLP-style SE (SiLU inside), a SiLU conv stage (not an SE block)
    and a hard-sigmoid SE; two outputs: logits and an embedding."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.se1 = LinearSE(16, 4)
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.SiLU())
        self.se2 = ConvSE(32, 8, nn.Hardsigmoid())
        self.embed = nn.Linear(32, 16)
        self.head = nn.Linear(16, 5)

    def se_blocks(self):
        return [self.se1, self.se2]

    def forward(self, x):
        x = self.stem(x)
        x = x + self.se1(self.body(x))
        x = self.se2(self.down(x))
        e = self.embed(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return self.head(F.relu(e)), e


def randomize_batchnorm(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def gate_nodes(path):
    """Names of the graph's SE gate nodes in graph order: Sigmoid/HardSigmoid nodes whose output feeds (possibly
    through Reshape / Unsqueeze) a Mul whose other operand is not the gate's own input (that would be SiLU)."""
    g = onnx.load(path).graph
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    names = []
    for n in g.node:
        if n.op_type not in ("Sigmoid", "HardSigmoid"):
            continue
        outs = [n.output[0]]
        for c in consumers.get(n.output[0], []):
            if c.op_type in ("Reshape", "Unsqueeze"):
                outs.append(c.output[0])
                for c2 in consumers.get(c.output[0], []):
                    if c2.op_type == "Unsqueeze":
                        outs.append(c2.output[0])
        is_gate = False
        for t in outs:
            for c in consumers.get(t, []):
                if c.op_type == "Mul" and n.input[0] not in c.input:
                    is_gate = True
        if is_gate:
            names.append(n.name)
    return names


def save(path, array):
    np.save(path, np.ascontiguousarray(array, dtype="<f4"))


def generate(out_dir, name, model, height, width, output_names, inputs, u_batch=None):
    model.eval()
    path = os.path.join(out_dir, name + ".onnx")
    dummy = torch.from_numpy(inputs[:1])
    dynamic = {"input": {0: "batch"}}
    for o in output_names:
        dynamic[o] = {0: "batch"}
    torch.onnx.export(model, dummy, path, input_names=["input"], output_names=output_names,
                      dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path))

    gates_seen, u_seen = [], []
    hooks = []
    for i, block in enumerate(model.se_blocks()):
        hooks.append(block.gate.register_forward_hook(lambda m, args, out: gates_seen.append(out)))
    hooks.append(model.se_blocks()[0].register_forward_hook(lambda m, args, out: u_seen.append(args[0])))

    nodes = gate_nodes(path)
    if len(nodes) != len(model.se_blocks()):
        raise SystemExit(f"{name}: found gate nodes {nodes}, want {len(model.se_blocks())}")
    channels = []
    for n in BATCHES:
        gates_seen.clear()
        u_seen.clear()
        with torch.no_grad():
            outs = model(torch.from_numpy(inputs[:n]))
        if not isinstance(outs, tuple):
            outs = (outs,)
        for i, o in enumerate(outs):
            save(os.path.join(out_dir, f"{name}.b{n}.out{i}.npy"), o.numpy())
        channels = []
        for j, g in enumerate(gates_seen):
            save(os.path.join(out_dir, f"{name}.b{n}.gate{j}.npy"), g.reshape(n, -1).numpy())
            channels.append(int(g.reshape(n, -1).shape[1]))
        if n == u_batch:
            save(os.path.join(out_dir, f"{name}.b{n}.u0.npy"), u_seen[0].numpy())
    for h in hooks:
        h.remove()
    return {
        "name": name,
        "file": name + ".onnx",
        "input": f"input_{height}x{width}.npy",
        "height": height,
        "width": width,
        "outputs": output_names,
        "gate_nodes": nodes,
        "gate_channels": channels,
        "batches": list(BATCHES),
        "max_batch": MAX_BATCH,
        "u0_batch": u_batch or 0,
    }


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "engine", "testdata")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(20261126)
    gen = torch.Generator().manual_seed(7)
    rng = np.random.default_rng(11)

    inputs = {}
    for h, w in ((64, 64), (96, 160)):
        x = rng.standard_normal((MAX_BATCH, 3, h, w)).astype("<f4")
        save(os.path.join(out_dir, f"input_{h}x{w}.npy"), x)
        inputs[(h, w)] = x

    models = []
    tiny = SETiny()
    models.append(generate(out_dir, "se_tiny_64x64", tiny, 64, 64, ["logits"], inputs[(64, 64)], u_batch=3))
    models.append(generate(out_dir, "se_tiny_96x160", tiny, 96, 160, ["logits"], inputs[(96, 160)]))
    res = SERes()
    randomize_batchnorm(res, gen)
    models.append(generate(out_dir, "se_res_96x160", res, 96, 160, ["logits", "embedding"], inputs[(96, 160)]))

    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump({"generator": "scripts/gen_engine_golden.py", "models": models}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
