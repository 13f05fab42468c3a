"""MTCNN face detection (Zhang et al., 2016) on onnxruntime, with the pipeline in numpy.

The weights in ``rudolph/data/mtcnn`` are the Keras port of the original Caffe models
(ipazc/mtcnn), exported to ONNX by keras2onnx (see the README there). What they expect:

* NHWC float32 input, RGB, normalised as ``(x - 127.5) * 0.0078125``;
* every image *transposed*, i.e. shaped ``(N, width, height, 3)``: the Caffe models were
  trained from MATLAB, which is column-major, and the port kept that. P-Net's maps come back
  transposed the same way, ``(1, W', H', C)``;
* outputs, which we pick by their last dimension rather than by name: box regression (4:
  dx1, dy1, dx2, dy2 as fractions of the box's width/height, in image orientation), face
  probability (2: softmax, index 1 = face) and, for O-Net only, landmarks (10: the five x
  then the five y, as fractions of the box).

Coordinates here are 0-based and continuous: a box ``(x1, y1, x2, y2)`` covers pixels
``x1 <= x < x2``, so its width is ``x2 - x1`` (the MATLAB-derived ports use 1-based inclusive
boxes; the difference is under a pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnxruntime as ort

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "mtcnn"

# Rekognition's names, in the order O-Net emits the points. "eyeLeft" is the eye on the
# image's left, which is what O-Net's first point is (checked on real portraits in the tests).
LANDMARK_NAMES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")

# Rekognition documents its smallest detectable face as 40x40 px in a 1920x1080 image,
# "proportionally larger" in larger images. The two limits below follow from that.
#
# Images are analysed with their longest side at most MAX_SIDE: the cost grows with the pixel
# count, and a 40 px face in a 1920 px image is still ~21 px after the downscale, i.e. above
# MTCNN's usual 20 px minimum.
MAX_SIDE = 1000
# The smallest face looked for is at least this fraction of the analysed image's shorter side
# (40/1080, as above). P-Net's first pyramid level dominates the run time and its pixel count
# goes with (12 / min_face)^2, so this roughly halves the work on a 4:3 photo of 1000x750;
# below ~540 px on the shorter side the absolute `min_face_size` (20) wins anyway.
MIN_FACE_RATIO = 40 / 1080

PYRAMID_FACTOR = 0.709  # ~ 1/sqrt(2): each level halves the pixel count
PNET_CELL = 12  # P-Net's receptive field, i.e. the smallest face at scale 1
PNET_STRIDE = 2  # P-Net's output stride (one 2x2 max-pool)

NORM_MEAN = 127.5
NORM_SCALE = 0.0078125  # 1 / 128

NmsMode = Literal["union", "min"]


@dataclass(frozen=True)
class DetectedFace:
    """One face, in pixels of the image given to :meth:`MTCNN.detect`."""

    confidence: float  # 0..1, O-Net's face probability
    box: tuple[float, float, float, float]  # left, top, width, height; clipped to the image
    landmarks: dict[str, tuple[float, float]]  # name -> (x, y); may fall outside the image


class MTCNN:
    """Three-stage cascade: P-Net proposals on an image pyramid, R-Net and O-Net refinement."""

    def __init__(
        self,
        model_dir: Path | None = None,
        threads: int | None = None,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.95),
    ) -> None:
        """``min_face_size`` is in pixels of the analysed image (longest side <= MAX_SIDE),
        and never below ``MIN_FACE_RATIO`` of its shorter side. ``thresholds`` are the face
        probabilities P-Net, R-Net and O-Net must reach. The usual final 0.7-0.8 lets through
        textured non-faces at 0.84-0.86 (a space-suit collar in skimage's astronaut, a
        motorcycle part), and the collar reached 0.90 once the photo was re-encoded as JPEG;
        real faces in the test photos score >= 0.998, and 98% of skimage's small LFW faces
        still pass 0.95 (99% at 0.9), hence 0.95."""
        if min_face_size < PNET_CELL:
            raise ValueError(f"min_face_size must be at least {PNET_CELL} pixels")
        model_dir = model_dir or DEFAULT_MODEL_DIR
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        # The cascade is many small runs with numpy work in between; idle pool threads that
        # spin-wait only steal CPU from that (and from other work in the process).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self._pnet = _Net(model_dir / "pnet.onnx", options)
        self._rnet = _Net(model_dir / "rnet.onnx", options)
        self._onet = _Net(model_dir / "onet.onnx", options)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in a uint8 HxWx3 RGB image (HxW grayscale is accepted too), most confident
        first."""
        if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
        if rgb.ndim == 2:
            rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
        height, width = rgb.shape[:2]

        # Analyse a downscaled copy of large images; `shrink` maps its pixels back.
        shrink = min(1.0, MAX_SIDE / max(height, width))
        img = rgb
        if shrink < 1.0:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        if min(img.shape[:2]) < PNET_CELL:
            return []

        boxes, scores = self._propose(img)
        if len(boxes):
            boxes, scores = self._refine(img, boxes)
        if not len(boxes):
            return []
        boxes, scores, points = self._output(img, boxes)

        boxes /= shrink
        points /= shrink
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        faces = [
            DetectedFace(
                confidence=float(score),
                box=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                landmarks={
                    name: (float(x), float(y))
                    for name, x, y in zip(LANDMARK_NAMES, pts[:5], pts[5:], strict=True)
                },
            )
            for (x1, y1, x2, y2), score, pts in zip(boxes, scores, points, strict=True)
            if x2 > x1 and y2 > y1
        ]
        faces.sort(key=lambda face: face.confidence, reverse=True)
        return faces

    # -- stages ----------------------------------------------------------------------------

    def _scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the first maps the smallest wanted face onto P-Net's 12 px window,
        the last still leaves the shorter side at least 12 px."""
        min_face = max(self.min_face_size, MIN_FACE_RATIO * min(height, width))
        scale = PNET_CELL / min_face
        scales = []
        while min(height, width) * scale >= PNET_CELL:
            scales.append(scale)
            scale *= PYRAMID_FACTOR
        return scales

    def _propose(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1, P-Net: candidate squares (N, 4) x1y1x2y2 and their scores (N,)."""
        height, width = img.shape[:2]
        found_boxes, found_scores, found_regs = [], [], []
        for scale in self._scales(height, width):
            size = (math.ceil(width * scale), math.ceil(height * scale))
            level = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            reg, prob = self._pnet(_normalise(level[np.newaxis]), 4, 2)
            # Back from (1, W', H', C) to image orientation (H', W', C).
            prob = prob[0, :, :, 1].T
            reg = reg[0].transpose(1, 0, 2)
            rows, cols = np.nonzero(prob >= self.thresholds[0])
            if not rows.size:
                continue
            # Each map cell is P-Net's 12x12 window at (stride * col, stride * row).
            corners = np.stack([cols, rows], axis=1) * PNET_STRIDE
            boxes = np.hstack([corners, corners + PNET_CELL]) / scale
            scores = prob[rows, cols]
            keep = _nms(boxes, scores, 0.5, "union")
            found_boxes.append(boxes[keep])
            found_scores.append(scores[keep])
            found_regs.append(reg[rows, cols][keep])
        if not found_boxes:
            return np.empty((0, 4)), np.empty(0)

        boxes = np.concatenate(found_boxes)
        scores = np.concatenate(found_scores)
        keep = _nms(boxes, scores, 0.7, "union")
        boxes = _square(_regress(boxes[keep], np.concatenate(found_regs)[keep]))
        return boxes, scores[keep]

    def _refine(self, img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 2, R-Net on 24x24 crops: fewer, better squares."""
        boxes = _snap(boxes)
        reg, prob = self._rnet(_crops(img, boxes, 24), 4, 2)
        passed = prob[:, 1] > self.thresholds[1]
        boxes, scores, reg = boxes[passed], prob[passed, 1], reg[passed]
        keep = _nms(boxes, scores, 0.7, "union")
        return _square(_regress(boxes[keep], reg[keep])), scores[keep]

    def _output(
        self, img: np.ndarray, boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 3, O-Net on 48x48 crops: final boxes (N, 4), scores (N,) and landmarks
        (N, 10: x0..x4, y0..y4), all in pixels of ``img``."""
        boxes = _snap(boxes)
        reg, marks, prob = self._onet(_crops(img, boxes, 48), 4, 10, 2)
        passed = prob[:, 1] > self.thresholds[2]
        boxes, scores, reg, marks = boxes[passed], prob[passed, 1], reg[passed], marks[passed]
        # Landmarks are relative to the crop O-Net saw, not to the regressed box.
        size = boxes[:, 2:] - boxes[:, :2]
        points = np.hstack(
            [
                boxes[:, [0]] + marks[:, :5] * size[:, [0]],
                boxes[:, [1]] + marks[:, 5:] * size[:, [1]],
            ]
        )
        boxes = _regress(boxes, reg)
        # "min" overlap drops a small box mostly inside a bigger, surer one (e.g. a box
        # on just the eyes and nose of a face already found).
        keep = _nms(boxes, scores, 0.7, "min")
        return boxes[keep], scores[keep], points[keep]


class _Net:
    """One onnxruntime session whose outputs are asked for by their last dimension."""

    def __init__(self, path: Path, options: ort.SessionOptions) -> None:
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = {out.shape[-1]: out.name for out in self._session.get_outputs()}

    def __call__(self, batch: np.ndarray, *widths: int) -> list[np.ndarray]:
        """Run on an NHWC batch (transposed here, as the weights want); return the outputs
        whose last dimension is each of ``widths``, in that order."""
        batch = np.ascontiguousarray(batch.transpose(0, 2, 1, 3))
        names = [self._outputs[width] for width in widths]
        outputs: list[np.ndarray] = self._session.run(names, {self._input: batch})  # untyped
        return outputs


# -- numpy helpers ---------------------------------------------------------------------------


def _normalise(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) - NORM_MEAN) * NORM_SCALE


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Integer boxes (N, 4) cut out of ``img`` (zero outside it), resized to size x size:
    a normalised (N, size, size, 3) batch."""
    height, width = img.shape[:2]
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)):
        if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
            patch = img[y1:y2, x1:x2]
        else:
            patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
            ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
            if ix2 > ix1 and iy2 > iy1:
                patch[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = img[iy1:iy2, ix1:ix2]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return _normalise(out)


def _snap(boxes: np.ndarray) -> np.ndarray:
    """Round to whole pixels (what gets cropped), keeping every box at least 1 px wide."""
    snapped: np.ndarray = np.rint(boxes)
    snapped[:, 2:] = np.maximum(snapped[:, 2:], snapped[:, :2] + 1)
    return snapped


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the networks' box regression: corner offsets as fractions of width/height."""
    size = boxes[:, 2:] - boxes[:, :2]
    regressed: np.ndarray = boxes + reg * np.hstack([size, size])
    return regressed


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (R-Net and O-Net take square crops)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True) / 2
    return np.hstack([centre - half, centre + half])


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: NmsMode) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the boxes kept, best first. Overlap is
    intersection over union, or over the smaller box's area for ``mode="min"``."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        inter_h = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        inter = inter_w.clip(0) * inter_h.clip(0)
        if mode == "min":
            denom = np.minimum(areas[best], areas[rest])
        else:
            denom = areas[best] + areas[rest] - inter
        overlap = inter / np.maximum(denom, 1e-9)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)
