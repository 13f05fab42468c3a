"""The text detector in 8 bits: RapidOCR's PP-OCRv6 detector, quantized once at setup.

The float detector is most of the local backend's cost (measured on a 640x480 photo, one
thread: ~250 ms, more than labels and faces together); quantized to 8-bit integers with
onnxruntime's own tool (``onnxruntime.quantization``, part of the onnxruntime package: no other
dependency) it takes ~60 ms and reads the same words. The recognizer stays in floats: it runs
only on the lines found and is cheap beside the detector.

Static quantization needs activation ranges, measured on calibration images: the demo's
sample photos shipped with rudolph and lines of text rendered with Pillow's built-in font, so
setup needs nothing from the network. Weights are scaled per output channel into 7 bits
(``reduce_range``), so that the integer kernels of CPUs without VNNI cannot saturate.
tests/test_textdet.py holds it to the float detector's lines on real photos; bench/textdet.py
compares the two on pictures neither was tuned on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np

from rudolph.models.ocr import LIMIT_SIDE
from rudolph.models.runtime import ensure_built

#: The float model this one is made from, as rapidocr's wheel ships it.
SOURCE = "PP-OCRv6_det_small.onnx"
#: Rendered calibration text: sizes in pixels, and the lines written at each.
_TEXT_SIZES = (12, 18, 28, 44, 72)
_TEXT_LINES = ("NO PARKING 8-18h", "Exit only  Tel. 0123 456 789", "the quick brown fox jumps")


def source_path() -> Path:
    return Path(str(resources.files("rapidocr") / "models" / SOURCE))


def _to_input(bgr: np.ndarray) -> np.ndarray:
    """One BGR uint8 image as the detector's input, exactly as TextReader's rapidocr prepares
    it (the longer side at most LIMIT_SIDE, both rounded to multiples of 32, pixels to -1..1)."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    tensor = DetPreProcess(LIMIT_SIDE, "max")(bgr)
    assert tensor is not None  # only None for an empty image
    return tensor


def _text_panels() -> Iterator[np.ndarray]:
    """Lines of text, dark on light and light on dark, at several sizes (RGB uint8)."""
    from PIL import Image, ImageDraw, ImageFont

    for size in _TEXT_SIZES:
        for ink, paper in (((20, 20, 20), (235, 230, 220)), ((250, 250, 250), (40, 60, 90))):
            image = Image.new("RGB", (640, 480), paper)
            draw = ImageDraw.Draw(image)
            font = ImageFont.load_default(size)
            y = 10
            for line in _TEXT_LINES * 3:
                if y + size > 470:
                    break
                draw.text((12, y), line, fill=ink, font=font)
                y += int(size * 1.6)
            yield np.asarray(image)


def calibration_inputs() -> Iterator[np.ndarray]:
    """The detector inputs whose activations set the 8-bit ranges."""
    from PIL import Image

    samples = Path(str(resources.files("rudolph") / "data" / "samples"))
    photos = sorted(samples.glob("*.jpg"))
    for path in photos:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        yield _to_input(np.ascontiguousarray(rgb[:, :, ::-1]))
    for rgb in _text_panels():
        yield _to_input(np.ascontiguousarray(rgb[:, :, ::-1]))


def build_quantized(source: Path, out_path: Path) -> None:
    """Quantize the float detector at `source` into `out_path` (atomically)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name

    class Inputs(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._inputs = iter(calibration_inputs())

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._inputs, None)
            return None if tensor is None else {input_name: tensor}

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".textdet-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "quantized.onnx"
        # Folds and fuses the float graph first, as onnxruntime recommends before quantizing;
        # the symbolic shape pass is for transformers and needs sympy.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            Inputs(),
            # Integer operators (QLinearConv), the fastest form on onnxruntime's CPU kernels.
            quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
        )
        onnx.checker.check_model(str(quantized))
        quantized.chmod(0o644)
        quantized.replace(out_path)


def ensure_onnx(out_path: Path) -> Path:
    """The 8-bit detector at `out_path`, quantized from rapidocr's float model if missing."""
    return ensure_built(
        out_path,
        [source_path()],
        build_quantized,
        "8-bit text detector",
        f"rapidocr's {SOURCE}",
        "pip install rapidocr",
        (),
    )
