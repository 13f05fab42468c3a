"""Printed-text reading with RapidOCR (PP-OCRv6 det/rec models shipped in its wheel).

Only the models inside the wheel are used: rapidocr downloads anything else (other languages,
other versions) from the network, which a worker behind a firewall cannot do. The detector is
run in 8 bits (rudolph.models.textdet quantizes it at setup), the recognizer as shipped.
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
# (measured: "8" over a whole coffee cup), not text, unless it reads as a sure word of a few
# letters: a tight crop of one word fills the frame too.
MAX_LINE_AREA = 0.4
SURE_WORD = (3, 0.9)  # letters or digits, line confidence
# Lone characters on photos are mostly noise ("0" on a cat's fur); keep them only when sure.
MIN_SINGLE_CHAR_CONFIDENCE = 0.95
# A line is only as good as its words: coat buttons read as "0000" scored 0.80 as a line but
# 0.52 as a word, while real text scores alike on both.
MIN_WORD_CONFIDENCE = 0.6
# Words: the recognizer's spaces, and also letters further apart than WORD_GAP_PITCHES times
# the line's median letter pitch and WORD_GAP_HEIGHTS times its height (centre to centre).
# Measured: on a sign with evenly spaced letters the gap between "NO" and "PARKING" is 1.66
# pitches and 2.0 heights while the recognizer wrote no space; inside ordinary words the
# widest pair (a W beside an M) stays under 0.9 heights.
WORD_GAP_PITCHES = 1.5
WORD_GAP_HEIGHTS = 1.2
# The text detector misses a word that fills the whole frame (a tight crop, ~240x100): small
# images are read with a border of half their shorter side, replicated from their edge.
PAD_IMAGES_UP_TO = 400  # px, shorter side
#: The detector sees the image at its own size, shrunk only when its longer side passes this.
LIMIT_SIDE = 1280


def _quad(points: object, shift: float = 0.0, width: float = 0.0, height: float = 0.0) -> Quad:
    """Four corners; with `shift`, moved back from a padded image and clipped to the image."""
    corners = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if shift:
        corners = corners - shift
        corners[:, 0] = corners[:, 0].clip(0, width)
        corners[:, 1] = corners[:, 1].clip(0, height)
    return tuple((float(x), float(y)) for x, y in corners)


def _box_of(quads: list[Quad]) -> Quad:
    xs = [x for q in quads for x, _ in q]
    ys = [y for q in quads for _, y in q]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def _along(line: Quad) -> tuple[np.ndarray, float]:
    """The line's reading direction (unit vector) and its height in pixels."""
    p0, p1, _, p3 = (np.asarray(p) for p in line[:4])
    direction = p1 - p0
    norm = float(np.linalg.norm(direction))
    return (direction / norm if norm else np.array([1.0, 0.0])), float(np.linalg.norm(p3 - p0))


def split_words(text: str, chars: list[tuple[str, float, Quad]], line: Quad) -> tuple[OcrWord, ...]:
    """A line's words from its characters' positions: at the recognizer's spaces and where
    letters stand unusually far apart (see WORD_GAP_*). `chars` are the non-space characters
    in reading order with their scores and boxes; if they do not match the text, the words
    are the space-separated parts with boxes shared out along the line by length."""
    letters = [ch for ch in text if not ch.isspace()]
    if not letters:
        return ()
    if [c[0] for c in chars] != letters:
        return _words_by_length(text, line)
    direction, height = _along(line)
    centres = [float(np.mean(np.asarray(q), axis=0) @ direction) for _, _, q in chars]
    pitches = np.diff(centres)
    limit = 0.0
    if pitches.size:
        limit = max(WORD_GAP_PITCHES * float(np.median(pitches)), WORD_GAP_HEIGHTS * height)
    groups: list[list[int]] = [[]]
    index = 0
    for ch in text:
        if ch.isspace():
            groups.append([])
            continue
        if groups[-1] and index and centres[index] - centres[index - 1] > limit:
            groups.append([])
        groups[-1].append(index)
        index += 1
    return tuple(
        OcrWord(
            text="".join(chars[i][0] for i in group),
            confidence=float(np.mean([chars[i][1] for i in group])),
            quad=_box_of([chars[i][2] for i in group]),
        )
        for group in groups
        if group
    )


def _words_by_length(text: str, line: Quad) -> tuple[OcrWord, ...]:
    p0, p1, p2, p3 = (np.asarray(p, dtype=np.float64) for p in line[:4])
    words, start = [], 0
    for part in text.split(" "):
        if part.strip():
            a, b = start / len(text), (start + len(part)) / len(text)
            top0, top1 = p0 + (p1 - p0) * a, p0 + (p1 - p0) * b
            bottom1, bottom0 = p3 + (p2 - p3) * b, p3 + (p2 - p3) * a
            quad = tuple((float(x), float(y)) for x, y in (top0, top1, bottom1, bottom0))
            words.append(OcrWord(text=part.strip(), confidence=1.0, quad=quad))
        start += len(part) + 1
    return tuple(words)


def _area_ratio(quad: Quad, width: int, height: int) -> float:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return (max(xs) - min(xs)) * (max(ys) - min(ys)) / float(width * height)


def is_noise(line: OcrLine, width: int, height: int) -> bool:
    """True for detections that are not text a person would search for."""
    alnum = sum(ch.isalnum() for ch in line.text)
    sure = alnum >= SURE_WORD[0] and line.confidence >= SURE_WORD[1]
    if _area_ratio(line.quad, width, height) > MAX_LINE_AREA and not sure:
        return True
    if alnum == 0:
        return True
    if line.words and sum(w.confidence for w in line.words) / len(line.words) < MIN_WORD_CONFIDENCE:
        return True
    return alnum == 1 and line.confidence < MIN_SINGLE_CHAR_CONFIDENCE


class TextReader:
    """One RapidOCR engine per process; `read` takes RGB pixels. `detector` replaces the
    wheel's float text detector (the 8-bit one from rudolph.models.textdet)."""

    def __init__(self, threads: int | None = None, detector: Path | None = None) -> None:

        model_dir = Path(str(resources.files("rapidocr") / "models"))
        params: dict[str, object] = {
            "Global.log_level": "error",
            "Global.return_word_box": True,
            # One box per character (not rapidocr's own word grouping, which breaks evenly
            # spaced letters apart): split_words makes the words.
            "Global.return_single_char_box": True,
            # The 180-degree line classifier flipped a faint but upright line of a scanned
            # page into gibberish; images are already upright by their EXIF orientation.
            "Global.use_cls": False,
            # rapidocr's default scales the shorter side UP to 736 px; measured on 640x480
            # photos, keeping the size (only shrinking past 1280 px) read more (YAMAHA, not
            # YAMARA), found less noise, and took 144 ms instead of 328 ms on one core.
            "Det.limit_type": "max",
            "Det.limit_side_len": LIMIT_SIDE,
        }
        for stage, filename in _MODELS.items():
            params[f"{stage}.model_path"] = str(model_dir / filename)
        if detector is not None:
            params["Det.model_path"] = str(detector)
        if threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        self._engine = RapidOCR(params=params)
        # rapidocr logs "The text detection result is empty" as a warning on every
        # text-free photo; that is an answer, not a problem.
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def read(self, rgb: np.ndarray) -> list[OcrLine]:
        import cv2

        height, width = rgb.shape[:2]
        # rapidocr expects OpenCV's BGR order for arrays.
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        pad = min(height, width) // 2 if min(height, width) <= PAD_IMAGES_UP_TO else 0
        if pad:
            bgr = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        result = self._engine(bgr)
        # With detection and recognition on, rapidocr returns the full RapidOCROutput.
        assert isinstance(result, RapidOCROutput)
        if not result.txts or result.boxes is None or result.scores is None:
            return []
        # rapidocr's annotation of word_results is looser than what it returns: per line, a
        # tuple of (character, score, quad).
        char_groups: list[Any] = list(result.word_results or ())
        char_groups += [()] * (len(result.txts) - len(char_groups))
        lines = []
        found = zip(result.boxes, result.txts, result.scores, char_groups, strict=True)
        for box, text, score, group in found:
            chars = [
                (c[0], float(c[1]), _quad(c[2], pad, width, height))
                for c in group
                if isinstance(c, tuple) and len(c) == 3 and c[2] is not None and c[0].strip()
            ]
            quad = _quad(box, pad, width, height)
            words = split_words(text.strip(), chars, quad)
            line = OcrLine(text=text.strip(), confidence=float(score), quad=quad, words=words)
            if not is_noise(line, width, height):
                lines.append(line)
        return lines
