"""Printed-text reading with RapidOCR (PP-OCRv6 det/rec models shipped in its wheel).

Only the models inside the wheel are used: rapidocr downloads anything else (other languages,
other versions) from the network, which a worker behind a firewall cannot do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rapidocr import RapidOCR
from rapidocr.utils.output import RapidOCROutput

Quad = tuple[tuple[float, float], ...]  # four (x, y) corners in pixels


@dataclass(frozen=True)
class OcrWord:
    text: str
    confidence: float  # 0..1
    quad: Quad


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float  # 0..1
    quad: Quad
    words: tuple[OcrWord, ...]


_MODELS = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}
# A detection covering most of the picture is the detector's artefact on text-free photos
# (measured: "8" over a whole coffee cup), not text.
MAX_LINE_AREA = 0.4
# Lone characters on photos are mostly noise ("0" on a cat's fur); keep them only when sure.
MIN_SINGLE_CHAR_CONFIDENCE = 0.95
# A line is only as good as its words: coat buttons read as "0000" scored 0.80 as a line but
# 0.52 as a word, while real text scores alike on both.
MIN_WORD_CONFIDENCE = 0.6


def _quad(points: object) -> Quad:
    return tuple((float(x), float(y)) for x, y in np.asarray(points).reshape(-1, 2))


def _area_ratio(quad: Quad, width: int, height: int) -> float:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return (max(xs) - min(xs)) * (max(ys) - min(ys)) / float(width * height)


def is_noise(line: OcrLine, width: int, height: int) -> bool:
    """True for detections that are not text a person would search for."""
    if _area_ratio(line.quad, width, height) > MAX_LINE_AREA:
        return True
    alnum = sum(ch.isalnum() for ch in line.text)
    if alnum == 0:
        return True
    if line.words and sum(w.confidence for w in line.words) / len(line.words) < MIN_WORD_CONFIDENCE:
        return True
    return alnum == 1 and line.confidence < MIN_SINGLE_CHAR_CONFIDENCE


class TextReader:
    """One RapidOCR engine per process; `read` takes RGB pixels."""

    def __init__(self, threads: int | None = None) -> None:

        model_dir = Path(str(resources.files("rapidocr") / "models"))
        params: dict[str, object] = {
            "Global.log_level": "error",
            "Global.return_word_box": True,
            # The 180-degree line classifier flipped a faint but upright line of a scanned
            # page into gibberish; images are already upright by their EXIF orientation.
            "Global.use_cls": False,
            # rapidocr's default scales the shorter side UP to 736 px; measured on 640x480
            # photos, keeping the size (only shrinking past 1280 px) read more (YAMAHA, not
            # YAMARA), found less noise, and took 144 ms instead of 328 ms on one core.
            "Det.limit_type": "max",
            "Det.limit_side_len": 1280,
        }
        for stage, filename in _MODELS.items():
            params[f"{stage}.model_path"] = str(model_dir / filename)
        if threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        self._engine = RapidOCR(params=params)
        # rapidocr logs "The text detection result is empty" as a warning on every
        # text-free photo; that is an answer, not a problem.
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def read(self, rgb: np.ndarray) -> list[OcrLine]:
        # rapidocr expects OpenCV's BGR order for arrays.
        result = self._engine(np.ascontiguousarray(rgb[:, :, ::-1]))
        # With detection and recognition on, rapidocr returns the full RapidOCROutput.
        assert isinstance(result, RapidOCROutput)
        if not result.txts or result.boxes is None or result.scores is None:
            return []
        height, width = rgb.shape[:2]
        # rapidocr's annotation of word_results is looser than what it returns: per line, a
        # tuple of (text, score, quad) words.
        word_groups: list[Any] = list(result.word_results or ())
        word_groups += [()] * (len(result.txts) - len(word_groups))
        lines = []
        found = zip(result.boxes, result.txts, result.scores, word_groups, strict=True)
        for box, text, score, group in found:
            words = tuple(
                OcrWord(text=w[0], confidence=float(w[1]), quad=_quad(w[2]))
                for w in group
                if isinstance(w, tuple) and len(w) == 3 and w[2] is not None and w[0].strip()
            )
            line = OcrLine(text=text.strip(), confidence=float(score), quad=_quad(box), words=words)
            if not is_noise(line, width, height):
                lines.append(line)
        return lines
