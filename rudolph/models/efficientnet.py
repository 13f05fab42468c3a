"""EfficientNet-Lite0 ImageNet classifier for the ``local`` backend, without torch: the ONNX
graph (built once by rudolph/models/efficientnet_graph.py from the torch checkpoint, read by
rudolph/models/torch_checkpoint.py) run with onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rudolph.models.efficientnet_graph import IMAGE_SIZE, INPUT_NAME, OUTPUT_NAME
from rudolph.models.runtime import cpu_session

# EfficientNet-Lite normalisation (efficientnet_lite_builder.py): (x - 127) / 128 on 0..255 RGB.
MEAN_RGB = 127.0
STDDEV_RGB = 128.0


def preprocess(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 [1, 3, size, size], normalised with (x - 127) / 128.

    Takes the central square spanning the whole shorter side (i.e. "resize the shorter side to
    224, centre-crop 224", done as one bicubic resample).  On the reference photos this beat
    the TF eval crop (central 87.5 %), a whole-image squash to 224x224 and letterboxing.
    Greyscale (HxW) and RGBA inputs are accepted too.
    """
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    h, w = arr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(arr[top : top + side, left : left + side, :3])
    img = Image.fromarray(square)
    img = img.resize((size, size), Image.Resampling.BICUBIC)
    x = (np.asarray(img, dtype=np.float32) - MEAN_RGB) / STDDEV_RGB
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class ImageNetClassifier:
    """EfficientNet-Lite over onnxruntime (CPU); the input size is the model's."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        self.session = cpu_session(onnx_path, threads)
        self.size = int(self.session.get_inputs()[0].shape[2])

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """Raw logits, float32 [1000]."""
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: preprocess(rgb, self.size)})
        return np.asarray(out[0], dtype=np.float32)

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """Softmax over the 1000 ImageNet classes, float32 [1000]."""
        z = self.logits(rgb).astype(np.float64)
        z -= z.max()
        e = np.exp(z)
        probabilities: np.ndarray = (e / e.sum()).astype(np.float32)
        return probabilities
