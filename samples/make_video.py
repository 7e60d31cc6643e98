"""Makes samples/fashion.mp4 and samples/fashion.truth.csv from the Fashion-MNIST test set.

  /usr/bin/python3 samples/make_video.py [--out-dir samples]

Deterministic: the same inputs, seed and ffmpeg/libx264 build give the same bytes. The test-set items are
drawn at random with a fixed seed, ITEMS_PER_CLASS per class, independently of any model. Each item is shown
for FRAMES_PER_ITEM frames at FPS, upscaled into a 640 x 360 gray frame inside the centered 360 x 360 square
(the region sestream's center_crop takes), with per-item size, position, brightness and background changes,
per-frame shake and brightness flicker, and light noise. A frame counter is drawn in the left margin, outside
the crop. Raw gray frames are piped into ffmpeg and encoded H.264 (libx264, yuv420p) in MP4.
See samples/README.md for the ground truth format.
"""

import argparse
import csv
import os
import subprocess
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "train"))
import fmnist  # noqa: E402

WIDTH, HEIGHT = 640, 360
FPS = 12
FRAMES_PER_ITEM = 10
ITEMS_PER_CLASS = 5
SEED = 2026
CRF = 28


def pick_items(labels, rng):
    """Test-set indices, ITEMS_PER_CLASS per class, in a random order."""
    picked = []
    for c in range(10):
        candidates = np.flatnonzero(labels == c)
        picked.extend(int(i) for i in rng.choice(candidates, ITEMS_PER_CLASS, replace=False))
    return [picked[i] for i in rng.permutation(len(picked))]


def render(images, items, rng):
    """Yields (frame uint8 HEIGHT x WIDTH, test index) for every frame, in order."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frame_no = 0
    for idx in items:
        size = int(round(rng.uniform(0.80, 0.90) * HEIGHT))
        item = cv2.resize(images[idx], (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        cx = WIDTH / 2 + rng.uniform(-14, 14)
        cy = HEIGHT / 2 + rng.uniform(-14, 14)
        gain = rng.uniform(0.75, 1.10)
        base = rng.uniform(6, 24)
        tilt = rng.uniform(-8, 8)  # a soft lighting gradient across the frame
        background = base + tilt * (xx / WIDTH - 0.5) + 0.5 * tilt * (yy / HEIGHT - 0.5)
        for _ in range(FRAMES_PER_ITEM):
            frame = background.copy()
            x0 = int(round(cx + rng.uniform(-3, 3) - size / 2))
            y0 = int(round(cy + rng.uniform(-3, 3) - size / 2))
            flicker = gain * rng.uniform(0.97, 1.03)
            frame[y0:y0 + size, x0:x0 + size] += flicker * item
            frame += rng.normal(0.0, 2.5, frame.shape).astype(np.float32)
            out = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
            cv2.putText(out, f"{frame_no:04d}", (16, 340), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 170, 1, cv2.LINE_AA)
            yield out, idx
            frame_no += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--crf", type=int, default=CRF)
    args = ap.parse_args()

    images, labels = fmnist.load("t10k")
    rng = np.random.default_rng(SEED)
    items = pick_items(labels, rng)
    video = os.path.join(args.out_dir, "fashion.mp4")
    truth = os.path.join(args.out_dir, "fashion.truth.csv")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
           "-c:v", "libx264", "-preset", "medium", "-crf", str(args.crf), "-pix_fmt", "yuv420p",
           "-g", str(2 * FPS), "-bf", "0", "-threads", "1", "-map_metadata", "-1",
           "-fflags", "+bitexact", "-flags:v", "+bitexact", "-movflags", "+faststart", video]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    frames = 0
    try:
        for frame, _ in render(images, items, rng):
            proc.stdin.write(frame.tobytes())
            frames += 1
    finally:
        proc.stdin.close()
    if proc.wait() != 0:
        sys.exit(f"ffmpeg failed with exit code {proc.returncode}: {' '.join(cmd)}")

    with open(truth, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["first_frame", "last_frame", "label", "name", "test_index"])
        for i, idx in enumerate(items):
            first = i * FRAMES_PER_ITEM
            w.writerow([first, first + FRAMES_PER_ITEM - 1, int(labels[idx]), fmnist.LABELS[labels[idx]], idx])
    print(f"{video}: {frames} frames, {os.path.getsize(video)} bytes; {truth}: {len(items)} items")


if __name__ == "__main__":
    main()
