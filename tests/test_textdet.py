"""The 8-bit text detector: quantized here from rapidocr's float model, it must find the lines
the float detector finds (tests/fixtures/textdet/float_reference.json, recorded by
scripts/textdet_reference.py) and read them the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rudolph.models import textdet
from rudolph.models.ocr import TextReader
from scripts.textdet_reference import pictures

FIXTURE = Path(__file__).parent / "fixtures" / "textdet" / "float_reference.json"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built here, so the test covers the quantization itself."""
    path = tmp_path_factory.mktemp("textdet") / "det-int8.onnx"
    textdet.build_quantized(textdet.source_path(), path)
    return path


def _box(quad: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return min(xs), min(ys), max(xs), max(ys)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union else 0.0


def test_the_convolutions_run_in_8_bits(quantized: Path) -> None:
    import onnx

    ops = [node.op_type for node in onnx.load(str(quantized)).graph.node]
    assert ops.count("QLinearConv") >= 80, "the detector's ~83 convolutions are quantized"
    assert "Conv" not in ops


def test_every_line_of_the_float_detector_is_found_and_read_alike(quantized: Path) -> None:
    reference = json.loads(FIXTURE.read_text())
    reader = TextReader(threads=1, detector=quantized)
    found, misses = 0, []
    for name, rgb in pictures().items():
        lines = reader.read(rgb)
        for expected in reference[name]:
            box = _box(expected["quad"])
            same = [
                line
                for line in lines
                if line.text == expected["text"]
                and _iou(box, _box([list(p) for p in line.quad])) >= 0.7
            ]
            if same:
                found += 1
            else:
                misses.append((name, expected["text"], [line.text for line in lines]))
    total = sum(map(len, reference.values()))
    assert total >= 15
    # Quantization may change a glyph on a long line; not a line, and not more than one.
    assert found >= total - 1, misses


def test_the_8_bit_detector_sees_nothing_on_a_blank_page(quantized: Path) -> None:
    reader = TextReader(threads=1, detector=quantized)
    assert reader.read(np.full((480, 640, 3), 200, dtype=np.uint8)) == []
