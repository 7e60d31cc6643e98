#!/usr/bin/python3
"""PyTorch eager baseline for `sestream bench`: times a torchvision model the way bench does.

    /usr/bin/python3 scripts/bench_torch.py [--model mobilenet_v3_small] [--batch 8] [--threads 2]
                                            [--iterations 50] [--warmup 5] [--size 224] [--passive] [--json]

Random weights (seed 0, as scripts/export_torchvision.py), eval mode, torch.inference_mode(), a fixed random
input of batch x 3 x size x size. Prints the same JSON fields as `sestream bench --json`, with engine
"pytorch-eager" ("pytorch-eager-passive" with --passive).

--passive sets OMP_WAIT_POLICY=PASSIVE before torch loads, so idle OpenMP threads sleep instead of spinning.
On a busy shared machine that makes PyTorch many times faster (spinning threads wait for a time slice at
every barrier); on an idle one it costs a little. Compare sestream with both.
"""

import argparse
import json
import os
import time


def percentile(sorted_ms, p):
    rank = max(1, -(-p * len(sorted_ms) // 100))  # nearest rank, as sestream bench
    return sorted_ms[rank - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v3_small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch  # after OMP_WAIT_POLICY is set: OpenMP reads it when torch loads
    import torchvision

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x)
        start = time.perf_counter()
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
        total = time.perf_counter() - start
    times.sort()
    out = {
        "engine": "pytorch-eager-passive" if args.passive else "pytorch-eager",
        "model": args.model,
        "batch": args.batch,
        "threads": args.threads,
        "iterations": args.iterations,
        "images_per_sec": args.batch * args.iterations / total,
        "batch_ms_p50": percentile(times, 50),
        "batch_ms_p99": percentile(times, 99),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.model} on PyTorch {torch.__version__} eager{' (passive)' if args.passive else ''}, batch {args.batch}, {args.threads} threads: "
              f"{out['images_per_sec']:.1f} images/s, batch p50 {out['batch_ms_p50']:.2f} ms, "
              f"p99 {out['batch_ms_p99']:.2f} ms")


if __name__ == "__main__":
    main()
