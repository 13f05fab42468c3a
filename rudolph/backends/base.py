"""The interface every analysis backend implements, one method per feature.

The fleet runs each feature as its own task, so each method stands alone: it takes the image,
returns record entries (confidences in percent, boxes as ratios) or raises a RudolphError.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from rudolph.record import Face, Label, TextDetection
from rudolph.settings import Feature, Settings
from rudolph.source import ImageInput

FeatureResult = list[Label] | list[TextDetection] | list[Face]


class Analyzer(ABC):
    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def labels(self, image: ImageInput) -> list[Label]: ...

    @abstractmethod
    def text(self, image: ImageInput) -> list[TextDetection]: ...

    @abstractmethod
    def faces(self, image: ImageInput) -> list[Face]: ...

    @abstractmethod
    def version(self, feature: Feature) -> str:
        """What produced a feature's results, so a record says which model it came from."""

    def notes(self, image: ImageInput) -> list[str]:
        """What the backend did to this image before analysing it (downscaled, converted)."""
        return []

    def run(self, feature: Feature, image: ImageInput) -> FeatureResult:
        if feature == "labels":
            return self.labels(image)
        if feature == "text":
            return self.text(image)
        return self.faces(image)
