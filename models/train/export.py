"""Exports a trained FashionNet checkpoint to ONNX with sestream's metadata and checks the file.

  /usr/bin/python3 models/train/export.py --checkpoint /tmp/sestream-train/se-1 --out models/fashion-se.onnx

Reads <checkpoint>.pt and <checkpoint>.json (written by train.py). The graph: opset 13, input "input"
(N x 1 x 28 x 28 float32, N dynamic), output "logits" (N x 10), BatchNorm folded into the convolutions, no
Identity nodes. Each SE block is GlobalAveragePool -> Conv 1x1 -> Relu -> Conv 1x1 -> Sigmoid -> Mul(U, gate)
where U is the GlobalAveragePool's input. Checks: onnx.checker, the SE pattern, and OpenCV DNN agreeing with
PyTorch to 1e-4 at batch 1.
"""

import argparse
import io
import json
import os
import subprocess
import tempfile

import cv2
import numpy as np
import onnx
import torch

import contract
import fmnist
import net


def strip_identities(model):
    """Replaces Identity nodes by renaming: OpenCV 4.6 cannot import Identity on an initializer."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    for node in [n for n in graph.node if n.op_type == "Identity"]:
        src, dst = node.input[0], node.output[0]
        if dst in outputs:
            raise ValueError(f"Identity {node.name} feeds graph output {dst}; cannot strip it")
        graph.node.remove(node)
        for other in graph.node:
            for i, name in enumerate(other.input):
                if name == dst:
                    other.input[i] = src
    return model


def se_blocks(model):
    """Returns [(mul name, channels)] for each Mul(U, Sigmoid(...)) whose chain reaches GlobalAveragePool(U)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for mul in (n for n in model.graph.node if n.op_type == "Mul"):
        for gate_in, u in ((mul.input[1], mul.input[0]), (mul.input[0], mul.input[1])):
            gate = producer.get(gate_in)
            if gate is None or gate.op_type != "Sigmoid":
                continue
            chain, cur = [], producer.get(gate.input[0])
            while cur is not None and cur.op_type in ("Conv", "Relu"):
                chain.append(cur.op_type)
                cur = producer.get(cur.input[0])
            if cur is not None and cur.op_type == "GlobalAveragePool" and cur.input[0] == u:
                if chain != ["Conv", "Relu", "Conv"]:
                    raise ValueError(f"SE block {mul.name}: chain {chain[::-1]}, want Conv Relu Conv")
                w = inits[producer[gate.input[0]].input[1]]
                found.append((mul.name, w.dims[0]))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="path prefix of <checkpoint>.pt and <checkpoint>.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="", help="training.commit; default: <checkpoint dir>/commit, else HEAD")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with open(args.checkpoint + ".json") as f:
        info = json.load(f)
    model = net.FashionNet(se=info["se"])
    model.load_state_dict(torch.load(args.checkpoint + ".pt"))
    model.eval()

    commit = args.commit
    commit_file = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "commit")
    if not commit and os.path.exists(commit_file):
        commit = open(commit_file).read().strip()
    if not commit:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(__file__),
                                capture_output=True, text=True, check=True).stdout.strip()

    buf = io.BytesIO()
    dummy = torch.zeros(1, 1, contract.HEIGHT, contract.WIDTH)
    torch.onnx.export(model, dummy, buf, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    proto = strip_identities(onnx.load_from_string(buf.getvalue()))
    ops = sorted({n.op_type for n in proto.graph.node})
    if "BatchNormalization" in ops or "Identity" in ops:
        raise ValueError(f"exported graph still has {ops}")
    meta = {
        "labels": json.dumps(fmnist.LABELS),
        "preprocess.width": str(contract.WIDTH),
        "preprocess.height": str(contract.HEIGHT),
        "preprocess.color": contract.COLOR,
        "preprocess.resize": contract.RESIZE,
        "preprocess.scale": repr(contract.SCALE),
        "preprocess.mean": json.dumps(contract.MEAN),
        "preprocess.std": json.dumps(contract.STD),
        "training.commit": commit,
        "training.test_accuracy": f"{info['test_accuracy']:.4f}",
        "training.seed": str(info["seed"]),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "sestream models/train"
    onnx.checker.check_model(proto)
    blocks = se_blocks(proto)
    if info["se"] and len(blocks) != 3:
        raise ValueError(f"found {len(blocks)} SE blocks, want 3: {blocks}")
    if not info["se"] and blocks:
        raise ValueError(f"no-SE model has SE blocks {blocks}")
    data = proto.SerializeToString()
    with open(args.out, "wb") as f:
        f.write(data)

    # OpenCV DNN against PyTorch at batch 1 on real test images.
    images, _ = fmnist.load("t10k")
    dnn = cv2.dnn.readNetFromONNX(args.out)
    worst = 0.0
    for i in range(0, 200, 20):
        x = ((images[i].astype(np.float32) / 255.0 - contract.MEAN[0]) / contract.STD[0])[None, None]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        dnn.setInput(x)
        got = dnn.forward()
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > 1e-4:
        raise ValueError(f"OpenCV DNN differs from PyTorch by {worst:g} > 1e-4")

    # Larger batches in OpenCV 4.6 need the batch dimension pinned (as sestream's loader does): check that
    # a copy pinned to 8 runs batches of 8 and 3 and agrees with PyTorch.
    pinned = onnx.load_from_string(data)
    for v in list(pinned.graph.input) + list(pinned.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = 8
    del pinned.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(pinned, os.path.join(tmp, "pinned8.onnx"))
        dnn8 = cv2.dnn.readNetFromONNX(os.path.join(tmp, "pinned8.onnx"))
    batch_worst = {}
    for n in (8, 3):
        x = ((images[:n].astype(np.float32) / 255.0 - contract.MEAN[0]) / contract.STD[0])[:, None]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        dnn8.setInput(x)
        batch_worst[n] = float(np.abs(dnn8.forward() - want).max())
    print(json.dumps({"out": args.out, "bytes": len(data), "ops": ops, "se_blocks": blocks,
                      "opencv_max_abs_diff_batch1": worst, "opencv_pinned8_max_abs_diff": batch_worst,
                      "metadata": meta}, indent=1))



if __name__ == "__main__":
    main()
