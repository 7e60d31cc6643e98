"""The preprocessing contract shared by training, export (metadata_props), the sample video and its check.

sestream's preprocess stage turns a decoded BGR frame into the model input with exactly these settings:
resize mode center_crop (take the largest centered region with the model's aspect, then cv2.resize with
INTER_LINEAR to WIDTH x HEIGHT), color gray (cv2.COLOR_BGR2GRAY), then value = (pixel * SCALE - MEAN) / STD.
MEAN and STD are the Fashion-MNIST training set's pixel mean and standard deviation at SCALE.
"""

import cv2
import numpy as np

WIDTH = 28
HEIGHT = 28
COLOR = "gray"
RESIZE = "center_crop"
SCALE = 1.0 / 255.0
MEAN = [0.2860]
STD = [0.3530]


def center_crop_box(frame_w, frame_h, width=WIDTH, height=HEIGHT):
    """Returns (x, y, w, h) of the largest centered region of frame with aspect width:height."""
    if frame_w * height > frame_h * width:
        h = frame_h
        w = frame_h * width // height
    else:
        w = frame_w
        h = frame_w * height // width
    return (frame_w - w) // 2, (frame_h - h) // 2, w, h


def _normalize(gray):
    value = (gray.astype(np.float32) * np.float32(SCALE) - np.float32(MEAN[0])) / np.float32(STD[0])
    return value[None, :, :]


def preprocess_bgr(frame):
    """BGR uint8 H x W x 3 frame -> float32 1 x HEIGHT x WIDTH: crop the centered region, then resize."""
    fh, fw = frame.shape[:2]
    x, y, w, h = center_crop_box(fw, fh)
    crop = frame[y:y + h, x:x + w]
    small = cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    return _normalize(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))


def preprocess_bgr_resize_first(frame):
    """The other order of center_crop: resize the whole frame by one factor so it covers WIDTH x HEIGHT
    (sides rounded half up), convert to gray, then keep the centre (torchvision's Resize + CenterCrop)."""
    fh, fw = frame.shape[:2]
    r = max(WIDTH / fw, HEIGHT / fh)
    nw = max(int(np.floor(fw * r + 0.5)), WIDTH)
    nh = max(int(np.floor(fh * r + 0.5)), HEIGHT)
    small = cv2.cvtColor(cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2GRAY)
    x, y = (nw - WIDTH) // 2, (nh - HEIGHT) // 2
    return _normalize(small[y:y + HEIGHT, x:x + WIDTH])
