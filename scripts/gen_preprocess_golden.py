#!/usr/bin/python3
"""Write the golden data of the preprocess tests: stages/preprocess/testdata/preprocess/.

Computes, with OpenCV's Python binding and numpy, the same resize, color conversion and
normalization that preprocess.Preprocessor does, for every resize mode and color mode on a
non-square source image and two non-square tensor sizes. Output: src.png (the source),
cases.json (the options and expected transform of each case) and one little-endian
float32 CHW file per case.

Run with /usr/bin/python3 (Debian's python3-opencv and python3-numpy):
    /usr/bin/python3 scripts/gen_preprocess_golden.py [OUTDIR]
"""
import json
import math
import os
import sys

import cv2
import numpy as np

SCALE = 1.0 / 255
PAD = 114.0
MEAN = {"rgb": [0.5, 0.4, 0.3], "bgr": [0.3, 0.4, 0.5], "gray": [0.45]}
STD = {"rgb": [0.2, 0.25, 0.3], "bgr": [0.3, 0.25, 0.2], "gray": [0.22]}
SIZES = [(40, 32), (64, 24)]  # (width, height): taller and wider than the source's 101x67


def source_image():
    """A 101x67 BGR image with gradients, edges and noise, so resizing is exercised."""
    rng = np.random.default_rng(5)
    h, w = 67, 101
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[..., 0] = 255 * x / (w - 1)
    img[..., 1] = 255 * y / (h - 1)
    img[..., 2] = 128 + 127 * np.sin(x / 5.0) * np.cos(y / 7.0)
    img[(x // 10 + y // 10) % 2 == 0] *= 0.6
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def round_half_up(v):
    return int(math.floor(v + 0.5))


def preprocess(img, width, height, resize, color):
    sh, sw = img.shape[:2]
    if resize == "stretch":
        nw, nh = width, height
    elif resize == "letterbox":
        r = min(width / sw, height / sh)
        nw = max(min(round_half_up(sw * r), width), 1)
        nh = max(min(round_half_up(sh * r), height), 1)
    else:
        r = max(width / sw, height / sh)
        nw = max(round_half_up(sw * r), width)
        nh = max(round_half_up(sh * r), height)
    res = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (sw, sh) else img
    if color == "gray":
        pix = cv2.cvtColor(res, cv2.COLOR_BGR2GRAY)[..., None]
    elif color == "rgb":
        pix = res[..., ::-1]
    else:
        pix = res
    mean = np.array(MEAN[color], np.float64)
    std = np.array(STD[color], np.float64)
    norm = ((pix.astype(np.float64) * SCALE - mean) / std).astype(np.float32).transpose(2, 0, 1)
    c = norm.shape[0]
    if resize == "letterbox":
        left, top = (width - nw) // 2, (height - nh) // 2
        pad = ((PAD * SCALE - mean) / std).astype(np.float32)
        out = np.empty((c, height, width), np.float32)
        out[:] = pad[:, None, None]
        out[:, top:top + nh, left:left + nw] = norm
    elif resize == "center_crop":
        cx, cy = (nw - width) // 2, (nh - height) // 2
        left, top = -cx, -cy
        out = norm[:, cy:cy + height, cx:cx + width]
    else:
        left, top = 0, 0
        out = norm
    transform = {"scale_x": nw / sw, "scale_y": nh / sh, "offset_x": float(left), "offset_y": float(top)}
    return np.ascontiguousarray(out, dtype="<f4"), transform


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "stages", "preprocess", "testdata", "preprocess")
    os.makedirs(outdir, exist_ok=True)
    img = source_image()
    if not cv2.imwrite(os.path.join(outdir, "src.png"), img):
        raise SystemExit("cannot write src.png")
    img = cv2.imread(os.path.join(outdir, "src.png"), cv2.IMREAD_COLOR)
    cases = []
    for width, height in SIZES:
        for resize in ("stretch", "letterbox", "center_crop"):
            for color in ("rgb", "bgr", "gray"):
                out, transform = preprocess(img, width, height, resize, color)
                name = f"{resize}_{color}_{width}x{height}"
                out.tofile(os.path.join(outdir, name + ".f32"))
                cases.append({
                    "name": name, "file": name + ".f32", "width": width, "height": height,
                    "resize": resize, "color": color, "scale": SCALE, "pad": PAD,
                    "mean": MEAN[color], "std": STD[color], "transform": transform,
                })
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump({"source": "src.png", "opencv": cv2.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
