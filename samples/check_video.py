"""Checks a model on samples/fashion.mp4 end to end in Python: decode, preprocess, classify, compare.

  /usr/bin/python3 samples/check_video.py --model models/fashion-se.onnx [--checkpoint /tmp/sestream-train/se-1]

Decodes the video with cv2.VideoCapture (frame i is the i-th decoded frame, 0-based), applies sestream's
preprocessing from the model's contract (center_crop, gray, scale, mean, std; models/train/contract.py) in both
orders of center_crop (crop then resize, and resize then crop), and classifies every frame with OpenCV DNN on
the ONNX file (--model) and/or with PyTorch on a training checkpoint (--checkpoint). Prints per-frame top-1
accuracy against samples/fashion.truth.csv, per class, and as JSON with --json.
"""

import argparse
import csv
import json
import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "train"))
import contract  # noqa: E402
import fmnist  # noqa: E402


def read_truth(path):
    """Returns a list with the label of every frame, from the ground truth's frame ranges."""
    labels = []
    with open(path) as f:
        for row in csv.DictReader(f):
            first, last = int(row["first_frame"]), int(row["last_frame"])
            if first != len(labels) or last < first:
                raise ValueError(f"{path}: range {first}-{last} does not follow frame {len(labels) - 1}")
            labels.extend([int(row["label"])] * (last - first + 1))
    return labels


def decode(path, preprocess):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open")
    tensors = []
    while len(tensors) < 100000:
        ok, frame = cap.read()
        if not ok:
            break
        tensors.append(preprocess(frame))
    cap.release()
    return np.stack(tensors)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=os.path.join(HERE, "fashion.mp4"))
    ap.add_argument("--truth", default=os.path.join(HERE, "fashion.truth.csv"))
    ap.add_argument("--model", help="ONNX file, run with OpenCV DNN at batch 1")
    ap.add_argument("--checkpoint", help="train.py output prefix, run with PyTorch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.model and not args.checkpoint:
        ap.error("need --model and/or --checkpoint")

    truth = np.array(read_truth(args.truth))
    classifiers = {}
    if args.model:
        dnn = cv2.dnn.readNetFromONNX(args.model)

        def run_dnn(x):
            out = []
            for i in range(len(x)):
                dnn.setInput(x[i:i + 1])
                out.append(dnn.forward()[0])
            return np.array(out)
        classifiers["opencv_dnn"] = run_dnn
    if args.checkpoint:
        import torch
        import net
        torch.set_num_threads(1)
        with open(args.checkpoint + ".json") as f:
            info = json.load(f)
        model = net.FashionNet(se=info["se"])
        model.load_state_dict(torch.load(args.checkpoint + ".pt"))
        model.eval()

        def run_torch(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        classifiers["torch"] = run_torch

    report = {"video": args.video, "frames": 0, "results": {}}
    orders = {"crop_then_resize": contract.preprocess_bgr,
              "resize_then_crop": contract.preprocess_bgr_resize_first}
    for order, fn in orders.items():
        x = decode(args.video, fn)
        if len(x) != len(truth):
            raise ValueError(f"{args.video}: {len(x)} frames decoded, ground truth has {len(truth)}")
        report["frames"] = len(x)
        for name, classify in classifiers.items():
            pred = classify(x).argmax(1)
            ok = pred == truth
            per_class = {fmnist.LABELS[c]: float(ok[truth == c].mean()) for c in range(10)}
            report["results"][f"{name}/{order}"] = {
                "top1": float(ok.mean()), "correct": int(ok.sum()),
                "wrong_frames": [int(i) for i in np.flatnonzero(~ok)], "per_class": per_class,
                "predictions": [int(p) for p in pred],
            }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for key, r in report["results"].items():
        print(f"{key}: top-1 {r['top1']:.4f} ({r['correct']}/{report['frames']} frames)")
        print("   per class: " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_class"].items()))


if __name__ == "__main__":
    main()
