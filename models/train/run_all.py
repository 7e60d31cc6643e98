"""Trains FashionNet with and without SE blocks for 3 seeds each, then exports and measures.

  /usr/bin/python3 models/train/run_all.py [--epochs 5] [--jobs 2] [--work /tmp/sestream-train]

Training runs as --jobs parallel processes of one torch thread each. A run whose <work>/<name>.json exists is
skipped, so an interrupted run resumes. After training, export.py writes models/fashion-se.onnx (SE, seed 1;
the seed is fixed in advance, not picked by accuracy) and <work>/fashion-nose.onnx (no SE, seed 1), and
card.py writes models/train/results.json with the numbers of the model card.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = [1, 2, 3]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/sestream-train")
    ap.add_argument("--skip-export", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    # The repository revision the models are trained from; export.py writes it to training.commit.
    # Kept from the first start when an interrupted run resumes.
    commit_file = os.path.join(args.work, "commit")
    if not os.path.exists(commit_file):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=True).stdout.strip()
        with open(commit_file, "w") as f:
            f.write(commit + "\n")

    runs = []
    for seed in SEEDS:
        for se in (True, False):
            name = f"{'se' if se else 'nose'}-{seed}"
            runs.append((name, ["--se" if se else "--no-se", "--seed", str(seed)]))
    pending = [r for r in runs if not os.path.exists(os.path.join(args.work, r[0] + ".json"))]
    running = []
    start = time.time()
    while pending or running:
        while pending and len(running) < args.jobs:
            name, flags = pending.pop(0)
            out = os.path.join(args.work, name)
            cmd = [sys.executable, os.path.join(HERE, "train.py"), *flags, "--epochs", str(args.epochs),
                   "--threads", "1", "--out", out]
            print("start", " ".join(cmd), flush=True)
            log = open(out + ".log", "w")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(2)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode != 0:
                    for _, p, _ in running:
                        p.kill()
                    sys.exit(f"training {name} failed with exit code {proc.returncode}; see {args.work}/{name}.log")
                with open(os.path.join(args.work, name + ".log")) as f:
                    print(f.read().strip().splitlines()[-1], flush=True)
    print(f"training done in {time.time() - start:.0f}s", flush=True)
    if args.skip_export:
        return
    models = os.path.dirname(HERE)
    subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--checkpoint",
                    os.path.join(args.work, "se-1"), "--out", os.path.join(models, "fashion-se.onnx")], check=True)
    subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--checkpoint",
                    os.path.join(args.work, "nose-1"), "--out", os.path.join(args.work, "fashion-nose.onnx")],
                   check=True)
    subprocess.run([sys.executable, os.path.join(HERE, "card.py"), "--work", args.work,
                    "--out", os.path.join(HERE, "results.json")], check=True)


if __name__ == "__main__":
    main()
