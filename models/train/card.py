"""Collects the model card's numbers into one JSON file.

  /usr/bin/python3 models/train/card.py --work /tmp/sestream-train --out models/train/results.json

Reads the train.py results of se-{1,2,3} and nose-{1,2,3} in --work, and measures for both networks:
parameters, multiply-adds (net.count_macs), and PyTorch CPU latency per forward pass in eval mode at batch 1
and batch 8 with 1 torch thread (median and 90th percentile over repeated timings; SE and no-SE measured in
alternation so machine load affects both alike).
"""

import argparse
import json
import os
import statistics
import time

import torch

import net

SEEDS = [1, 2, 3]


def latency_ms(models, batch, rounds, calls):
    """Per-call milliseconds for each model: the median and p90 over rounds of `calls` calls each."""
    x = torch.randn(batch, 1, 28, 28)
    samples = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():
            for _ in range(20):
                m(x)
        for _ in range(rounds):
            for k, m in models.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    m(x)
                samples[k].append((time.perf_counter() - t0) * 1000.0 / calls)
    out = {}
    for k, s in samples.items():
        s = sorted(s)
        out[k] = {"median_ms": statistics.median(s), "p90_ms": s[int(0.9 * (len(s) - 1))], "rounds": rounds,
                  "calls_per_round": calls}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/sestream-train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)

    result = {"torch": torch.__version__, "variants": {}}
    models = {}
    for variant, se in (("se", True), ("nose", False)):
        runs = []
        for seed in SEEDS:
            with open(os.path.join(args.work, f"{variant}-{seed}.json")) as f:
                r = json.load(f)
            runs.append({k: r[k] for k in ("seed", "test_accuracy", "test_accuracy_augmented", "train_seconds",
                                           "epochs")})
        acc = [r["test_accuracy"] for r in runs]
        acc_aug = [r["test_accuracy_augmented"] for r in runs]
        m = net.FashionNet(se=se)
        m.load_state_dict(torch.load(os.path.join(args.work, f"{variant}-1.pt")))
        m.eval()
        models[variant] = m
        result["variants"][variant] = {
            "runs": runs,
            "test_accuracy_mean": statistics.mean(acc), "test_accuracy_std": statistics.stdev(acc),
            "test_accuracy_augmented_mean": statistics.mean(acc_aug),
            "test_accuracy_augmented_std": statistics.stdev(acc_aug),
            "params": net.count_params(m), "macs": net.count_macs(m),
        }
    result["latency_batch1"] = latency_ms(models, 1, args.rounds, 50)
    result["latency_batch8"] = latency_ms(models, 8, args.rounds, 20)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
