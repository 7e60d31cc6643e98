"""Trains one FashionNet (with or without SE blocks) on Fashion-MNIST and evaluates it on the held-out test set.

  /usr/bin/python3 models/train/train.py --se --seed 1 --epochs 5 --out /tmp/sestream-train/se-1

writes <out>.pt (state dict) and <out>.json (accuracy, timings, settings). The test set (t10k) is used for
accuracy only, after the last epoch; there is no model selection on it.
"""

import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

import contract
import fmnist
import net


def augment(x, gen):
    """Video-like nuisances on a batch of N x 1 x 28 x 28 images with pixel values in [0, 1].

    The sample video shows each item upscaled into a centered square with position jitter, a dark background,
    brightness changes and light noise; after center_crop and a 28 x 28 resize the item is 0.8-0.93 of its
    original size and within about 1.5 px of the center. The ranges here cover that with margin.
    """
    n = x.shape[0]

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    scale = uniform(0.72, 1.08, n)
    shift = uniform(-0.22, 0.22, n, 2)  # normalized units: 0.22 = 3 px of 28
    # Sampling grid of output pixel centers in normalized coordinates (align_corners=False), scaled about
    # the center and shifted: out(p) = in(p / scale + shift). Built by broadcasting; affine_grid is slow here.
    h, w = x.shape[2], x.shape[3]
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    inv = (1.0 / scale).view(n, 1, 1)
    gx = xs.view(1, 1, w) * inv + shift[:, 0].view(n, 1, 1)
    gy = ys.view(1, h, 1) * inv + shift[:, 1].view(n, 1, 1)
    grid = torch.stack((gx.expand(n, h, w), gy.expand(n, h, w)), dim=3)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = uniform(0.65, 1.2, n, 1, 1, 1)
    background = uniform(0.0, 0.12, n, 1, 1, 1)
    sigma = uniform(0.0, 0.04, n, 1, 1, 1)
    x = background + gain * x + sigma * torch.randn(x.shape, generator=gen)
    return x.clamp_(0.0, 1.0)


def normalize(x):
    return (x - contract.MEAN[0]) / contract.STD[0]


def evaluate(model, images, labels, gen=None, batch=1000):
    """Top-1 accuracy; with gen, on augmented images (one fixed draw)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).float().div_(255.0).unsqueeze(1)
            if gen is not None:
                x = augment(x, gen)
            pred = model(normalize(x)).argmax(1)
            correct += (pred == torch.from_numpy(labels[i:i + batch]).long()).sum().item()
    return correct / len(images)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--se", action=argparse.BooleanOptionalAction, default=True, help="SE blocks (default) or none")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is fastest on a busy 2-core machine (2 threads spin and stall)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    ap.add_argument("--out", required=True, help="output path prefix: <out>.pt and <out>.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    train_x, train_y = fmnist.load("train")
    test_x, test_y = fmnist.load("t10k")
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    train_xt = torch.from_numpy(train_x.copy()).float().div_(255.0).unsqueeze(1)
    train_yt = torch.from_numpy(train_y.copy()).long()

    model = net.FashionNet(se=args.se)
    steps_per_epoch = math.ceil(len(train_xt) / args.batch)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    log = []
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_xt), generator=gen)
        total_loss, seen = 0.0, 0
        t0 = time.time()
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            x = normalize(augment(train_xt[idx], gen))
            loss = F.cross_entropy(model(x), train_yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            seen += len(idx)
        entry = {"epoch": epoch + 1, "loss": total_loss / seen, "seconds": time.time() - t0}
        log.append(entry)
        print(f"se={args.se} seed={args.seed} epoch {epoch + 1}/{args.epochs} loss {entry['loss']:.4f} "
              f"{entry['seconds']:.0f}s", flush=True)
    train_seconds = time.time() - start

    test_acc = evaluate(model, test_x, test_y)
    test_acc_aug = evaluate(model, test_x, test_y, gen=torch.Generator().manual_seed(12345))
    print(f"se={args.se} seed={args.seed} test accuracy {test_acc:.4f} (augmented test {test_acc_aug:.4f}) "
          f"train {train_seconds:.0f}s", flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(model.state_dict(), args.out + ".pt")
    result = {
        "se": args.se, "seed": args.seed, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
        "threads": args.threads, "train_images": len(train_xt),
        "test_accuracy": test_acc, "test_accuracy_augmented": test_acc_aug,
        "train_seconds": train_seconds, "log": log,
        "torch": torch.__version__,
    }
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
