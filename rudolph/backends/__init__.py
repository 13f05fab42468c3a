"""Analysis backends: one module each, one interface (`Analyzer`), chosen by a setting."""

from __future__ import annotations

from rudolph.backends.base import Analyzer
from rudolph.errors import ConfigurationError
from rudolph.settings import Settings

__all__ = ["Analyzer", "get_analyzer"]

# One analyzer per backend and settings per process, so models load once, not per image.
_analyzers: dict[tuple[str, Settings], Analyzer] = {}


def get_analyzer(settings: Settings, backend: str | None = None) -> Analyzer:
    name = backend or settings.analyzer
    cached = _analyzers.get((name, settings))
    if cached is not None:
        return cached
    analyzer: Analyzer
    if name == "local":
        from rudolph.backends.local import LocalAnalyzer

        analyzer = LocalAnalyzer(settings)
    elif name == "rekognition":
        from rudolph.backends.rekognition import RekognitionAnalyzer

        analyzer = RekognitionAnalyzer(settings)
    else:
        raise ConfigurationError(
            f"unknown analyzer backend {name!r}: set RUDOLPH_ANALYZER to 'local' or 'rekognition'"
        )
    _analyzers[(name, settings)] = analyzer
    return analyzer
