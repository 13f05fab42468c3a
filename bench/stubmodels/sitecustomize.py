"""The fleet without its models, to measure what the fleet itself costs an image.

    RUDOLPH_BENCH_STUB_MODELS=1 PYTHONPATH=bench/stubmodels .venv/bin/python bench/pipeline.py

With both set, every Python process the bench starts (the worker, its pool, the listener, the
analysis-only processes) replaces the local backend's three features by a 1 ms stand-in that
finds nothing, and loads no model: the pipeline's CPU per image is then the fleet's own (plus
3 ms), with the emulators' reported apart. Nothing outside bench/ imports this.
"""

import os
import time

if os.environ.get("RUDOLPH_BENCH_STUB_MODELS"):

    def _one_millisecond(self: object, image: object) -> list[object]:
        end = time.process_time() + 0.001
        while time.process_time() < end:
            pass
        return []

    try:
        from rudolph.backends import local
    except ImportError:  # a process without rudolph on its path (moto's server)
        pass
    else:
        local.LocalAnalyzer.labels = _one_millisecond  # type: ignore[method-assign,assignment]
        local.LocalAnalyzer.text = _one_millisecond  # type: ignore[method-assign,assignment]
        local.LocalAnalyzer.faces = _one_millisecond  # type: ignore[method-assign,assignment]
        local.LocalAnalyzer.load = lambda self, features: None  # type: ignore[method-assign]
