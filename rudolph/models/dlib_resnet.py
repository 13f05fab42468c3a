"""dlib's face recognition ResNet (v1, 128-d embeddings) as an ONNX graph, without dlib.

The weights ship in the PyPI package ``face_recognition_models`` as
``models/dlib_face_recognition_resnet_model_v1.dat``: the network of dlib's
``examples/dnn_face_recognition_ex.cpp`` (``anet_type``) written by ``dlib::serialize``. This
module reads that file with numpy only and rebuilds the network with ``onnx.helper``; the graph
runs on onnxruntime, so no dlib is needed at run time. dlib released the model into the public
domain (CC0); the package's own metadata says "MIT license".

dlib's serialization, as read here (dlib/serialize.h, dlib/dnn/core.h, layers.h, loss.h,
input.h, dlib/cuda/tensor.h):

* integers: one control byte (low 4 bits: byte count, 0x80: negative), then that many bytes,
  little-endian; floats: a ``float_details`` (int64 mantissa, int16 exponent); booleans: the
  character ``'1'`` or ``'0'``; strings: their length, then the bytes;
* a tensor: version 2, num_samples, k, nr, nc, then the float32 values, little-endian; an
  ``alias_tensor`` (a view into a layer's ``params``): version 1 and the four sizes;
* a network from the outside in: each ``add_layer`` writes its version, then *its whole
  sub-network*, then its own layer (a versioned string like ``con_4`` and the layer's fields)
  and bookkeeping (three booleans, two or three tensors); tag and skip layers write a version
  and their sub-network; the loss layer writes its version, its fields, then the network.

The net (``anet_type``), input to output: a 150x150 RGB chip, ``(pixel - mean) / 256``; conv
7x7/2 (32), affine, relu, max-pool 3x3/2; residual blocks of two 3x3 convs with affine
(BatchNorm folded by dlib), 3x32, 4x64, 3x128, 3x256 and one more of 256, each group starting
with a down-sampling block (stride-2 conv; the shortcut average-pooled 2x2/2); global average
pool; fully connected to 128 (no bias). A residual sum of tensors of different sizes is taken
over the larger size, the missing values being zero (``tt::add``), as dlib does.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rudolph.errors import ModelError
from rudolph.models.runtime import save_model

PACKAGE = "face_recognition_models"
PACKAGE_VERSION = "0.3.0"
WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"
INPUT_NAME = "chip"
OUTPUT_NAME = "embedding"
CHIP_SIZE = 150
EMBEDDING_SIZE = 128
OPSET = 17


class DlibFormatError(ValueError):
    """The bytes are not the dlib network this module knows."""


# ---------------------------------------------------------------------------------------------
# dlib's serialization primitives
# ---------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise DlibFormatError(f"truncated at byte {self.pos} (wanted {count} more)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte {control:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # float_details: is_inf, is_ninf, is_nan
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(float(mantissa), exponent)

    def boolean(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad boolean {char!r} at {self.pos - 1}")
        return char == b"1"

    def string(self) -> str:
        return self._take(self.integer()).decode("ascii")

    def version(self, accepted: tuple[int, ...], what: str) -> int:
        version = self.integer()
        if version not in accepted:
            raise DlibFormatError(f"{what} version {version} at {self.pos}, expected {accepted}")
        return version

    def tensor(self) -> np.ndarray:
        self.version((2,), "tensor")
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        values = np.frombuffer(self._take(4 * count), dtype="<f4")
        return values.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        self.version((1,), "alias_tensor")
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc


# ---------------------------------------------------------------------------------------------
# The network's layers, as dlib lays them out
# ---------------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One ``add_layer``'s computation: ``kind`` (con, affine, relu, avg_pool, max_pool,
    add_prev, fc) with what it needs; filled when the file is read."""

    kind: str
    tag: int = 0  # add_prev: the tag whose output is added
    weights: np.ndarray | None = None  # con: (out, in, kh, kw); fc: (in, out); affine: gamma
    bias: np.ndarray | None = None  # con, fc: (out,); affine: beta
    kernel: tuple[int, int] = (0, 0)  # con, pools (0, 0: the whole image)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    expected: dict[str, int] = field(default_factory=dict)  # what the definition says


@dataclass(frozen=True)
class Tag:
    number: int


@dataclass(frozen=True)
class Skip:
    number: int


Node = Layer | Tag | Skip


def _con(filters: int, size: int, stride: int) -> Layer:
    return Layer("con", expected={"filters": filters, "size": size, "stride": stride})


def _block(filters: int, stride: int) -> list[Node]:
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [Layer("affine"), _con(filters, 3, 1), Layer("relu"), Layer("affine"),
            _con(filters, 3, stride)]  # fmt: skip


def _ares(filters: int) -> list[Node]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [Layer("relu"), Layer("add_prev", tag=1), *_block(filters, 1), Tag(1)]


def _ares_down(filters: int) -> list[Node]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [Layer("relu"), Layer("add_prev", tag=2), Layer("avg_pool"), Skip(1), Tag(2),
            *_block(filters, 2), Tag(1)]  # fmt: skip


def network() -> list[Node]:
    """``anet_type`` of dnn_face_recognition_ex.cpp, from the output to the input (the order
    dlib writes it in), without the loss layer."""
    levels = [
        _ares_down(256),  # alevel0
        _ares(256), _ares(256), _ares_down(256),  # alevel1
        _ares(128), _ares(128), _ares_down(128),  # alevel2
        _ares(64), _ares(64), _ares(64), _ares_down(64),  # alevel3
        _ares(32), _ares(32), _ares(32),  # alevel4
    ]  # fmt: skip
    nodes: list[Node] = [Layer("fc", expected={"outputs": EMBEDDING_SIZE}), Layer("avg_pool")]
    for level in levels:
        nodes.extend(level)
    nodes += [Layer("max_pool"), Layer("relu"), Layer("affine"), _con(32, 7, 2)]
    return nodes


@dataclass
class DlibNet:
    """The network read from a .dat file: its layers from the input to the output."""

    nodes: list[Node]  # input first
    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]


def _read_layer(reader: _Reader, layer: Layer) -> None:
    name = reader.string()
    if name in ("con_4", "con_5", "con_6"):
        _expect(layer, "con", name)
        params = reader.tensor().ravel()
        filters = reader.integer()
        nr, nc = reader.integer(), reader.integer()
        layer.stride = (reader.integer(), reader.integer())
        layer.padding = (reader.integer(), reader.integer())
        w_shape, b_shape = reader.alias(), reader.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.real()
        use_bias = reader.boolean() if name in ("con_5", "con_6") else True
        if name == "con_6":
            reader.boolean()  # use_relu: a fused relu only set by dlib's own optimisations
        w_size = math.prod(w_shape)
        layer.weights = params[:w_size].reshape(w_shape)
        layer.bias = (
            params[w_size : w_size + math.prod(b_shape)].reshape(filters)
            if use_bias
            else np.zeros(filters, np.float32)
        )
        layer.kernel = (nr, nc)
        want = layer.expected
        if (filters, nr, nc, layer.stride[0]) != (
            want["filters"], want["size"], want["size"], want["stride"]
        ):  # fmt: skip
            raise DlibFormatError(f"con {filters}x{nr}x{nc}/{layer.stride} where {want}")
    elif name in ("affine_", "affine_2"):
        _expect(layer, "affine", name)
        params = reader.tensor().ravel()
        g_shape, b_shape = reader.alias(), reader.alias()
        mode = reader.integer()
        disabled = reader.boolean() if name == "affine_2" else False
        if mode != 0 or disabled:  # CONV_MODE: one gamma and beta per channel
            raise DlibFormatError(f"affine layer in mode {mode}, disabled={disabled}")
        g_size = math.prod(g_shape)
        layer.weights = params[:g_size].copy()
        layer.bias = params[g_size : g_size + math.prod(b_shape)].copy()
    elif name in ("relu_", "relu_2"):
        _expect(layer, "relu", name)
        if name == "relu_2" and reader.boolean():
            raise DlibFormatError("disabled relu layer")
    elif name in ("avg_pool_2", "max_pool_2"):
        _expect(layer, name.removesuffix("_2"), name)
        layer.kernel = (reader.integer(), reader.integer())
        layer.stride = (reader.integer(), reader.integer())
        layer.padding = (reader.integer(), reader.integer())
    elif name == "add_prev_":
        _expect(layer, "add_prev", name)
    elif name in ("fc_2", "fc_3"):
        _expect(layer, "fc", name)
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor().ravel()
        w_shape, b_shape = reader.alias(), reader.alias()
        bias_mode = reader.integer()  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
        for _ in range(4):
            reader.real()
        use_bias = reader.boolean() if name == "fc_3" else True
        if outputs != layer.expected["outputs"]:
            raise DlibFormatError(f"fc with {outputs} outputs, expected {layer.expected}")
        layer.weights = params[: inputs * outputs].reshape(inputs, outputs)
        has_bias = bias_mode == 0 and use_bias
        layer.bias = (
            params[inputs * outputs : inputs * outputs + math.prod(b_shape)].copy()
            if has_bias
            else np.zeros(outputs, np.float32)
        )
        if w_shape[:2] != (inputs, outputs):
            raise DlibFormatError(f"fc weights shaped {w_shape}")
    else:
        raise DlibFormatError(f"unknown layer {name!r} where a {layer.kind} was expected")


def _expect(layer: Layer, kind: str, name: str) -> None:
    if layer.kind != kind:
        raise DlibFormatError(f"found {name!r} where the network has a {layer.kind} layer")


def _bookkeeping(reader: _Reader, version: int, is_input: bool) -> None:
    """What add_layer writes after its layer: setup flags and training state, unused here."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
        reader.boolean()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if is_input:
        reader.tensor()  # grad_final
        if version >= 3:
            reader.integer()  # _sample_expansion_factor
    elif version == 2:
        reader.tensor()  # params_grad


def read_dat(data: bytes) -> DlibNet:
    """Parse dlib's serialized face recognition network (see the module's docstring)."""
    reader = _Reader(data)
    reader.version((1,), "add_loss_layer")
    loss = reader.string()
    if loss not in ("loss_metric_", "loss_metric_2"):
        raise DlibFormatError(f"loss {loss!r}: not a metric-learning (face recognition) network")
    if loss == "loss_metric_2":  # the first version had both hard-coded
        reader.real(), reader.real()  # margin, distance threshold

    nodes = network()
    versions: list[int] = []
    # The versions of every layer come first, outside in; then the input; then each add_layer's
    # own layer, inside out.
    for node in nodes:
        versions.append(
            reader.version((1, 2, 3), type(node).__name__)
            if isinstance(node, Layer)
            else reader.version((1, 2), type(node).__name__)
        )
    input_name = reader.string()
    if input_name not in ("input_rgb_image_sized", "input_rgb_image"):
        raise DlibFormatError(f"input layer {input_name!r}, expected an RGB image input")
    mean = (reader.real(), reader.real(), reader.real())
    size = (CHIP_SIZE, CHIP_SIZE)
    if input_name == "input_rgb_image_sized":
        size = (reader.integer(), reader.integer())
    last = len(nodes) - 1
    for index in range(last, -1, -1):
        node = nodes[index]
        if isinstance(node, Layer):
            _read_layer(reader, node)
            _bookkeeping(reader, versions[index], is_input=index == last)
    if reader.pos != len(data):
        raise DlibFormatError(f"{len(data) - reader.pos} bytes left after the network")
    return DlibNet(nodes=nodes[::-1], mean_rgb=mean, input_size=size)


# ---------------------------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------------------------


class _Graph:
    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        array = np.ascontiguousarray(value)
        self.initializers.append(self._numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str, **attrs: Any) -> str:
        out = self.name(prefix)
        self.nodes.append(self._helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


Shape = tuple[int, int, int]  # channels, rows, columns


def _pooled(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride


def _build_model(net: DlibNet) -> Any:
    from onnx import TensorProto, helper

    g = _Graph()
    mean = np.array(net.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = g.op("Sub", [INPUT_NAME, g.const("mean_rgb", mean)], "centred")
    # input_rgb_image: (pixel - mean) / 256
    x = g.op("Mul", [x, g.const("scale", np.array(1 / 256, dtype=np.float32))], "input")
    shape: Shape = (3, *net.input_size)
    tags: dict[int, tuple[str, Shape]] = {}
    nodes = net.nodes
    i = 0
    while i < len(nodes):
        node = nodes[i]
        i += 1
        if isinstance(node, Tag):
            tags[node.number] = (x, shape)
            continue
        if isinstance(node, Skip):
            x, shape = tags[node.number]
            continue
        if node.kind == "con":
            assert node.weights is not None and node.bias is not None
            w = node.weights.astype(np.float64)
            b = node.bias.astype(np.float64)
            following = nodes[i] if i < len(nodes) else None
            if isinstance(following, Layer) and following.kind == "affine":
                # affine (dlib's BatchNorm at inference) folded into the convolution
                assert following.weights is not None and following.bias is not None
                gamma = following.weights.astype(np.float64)
                w = w * gamma[:, None, None, None]
                b = b * gamma + following.bias.astype(np.float64)
                i += 1
            (kh, kw), (sy, sx), (py, px) = node.kernel, node.stride, node.padding
            x = g.op(
                "Conv",
                [x, g.const("w", w.astype(np.float32)), g.const("b", b.astype(np.float32))],
                "conv",
                kernel_shape=[kh, kw],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (w.shape[0], _pooled(shape[1], kh, sy, py), _pooled(shape[2], kw, sx, px))
        elif node.kind == "affine":
            assert node.weights is not None and node.bias is not None
            gamma = node.weights.reshape(1, -1, 1, 1)
            x = g.op("Mul", [x, g.const("gamma", gamma)], "affine_scale")
            x = g.op("Add", [x, g.const("beta", node.bias.reshape(1, -1, 1, 1))], "affine")
        elif node.kind == "relu":
            x = g.op("Relu", [x], "relu")
        elif node.kind in ("avg_pool", "max_pool"):
            (kh, kw), (sy, sx), (py, px) = node.kernel, node.stride, node.padding
            if (kh, kw) == (0, 0):  # avg_pool_everything
                x = g.op("GlobalAveragePool", [x], "global_avg_pool")
                shape = (shape[0], 1, 1)
                continue
            if node.kind == "avg_pool" and (py or px):
                raise DlibFormatError("padded average pooling is not supported")
            x = g.op(
                "AveragePool" if node.kind == "avg_pool" else "MaxPool",
                [x],
                node.kind,
                kernel_shape=[kh, kw],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (shape[0], _pooled(shape[1], kh, sy, py), _pooled(shape[2], kw, sx, px))
        elif node.kind == "add_prev":
            other, other_shape = tags[node.tag]
            # tt::add over the larger size; what one side lacks counts as zero.
            full: Shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            x = g.op("Add", [_pad_to(g, x, shape, full), _pad_to(g, other, other_shape, full)],
                     "residual")  # fmt: skip
            shape = full
        elif node.kind == "fc":
            assert node.weights is not None and node.bias is not None
            flat = g.op("Flatten", [x], "flatten", axis=1)
            x = g.op("MatMul", [flat, g.const("fc_w", node.weights)], "fc")
            if np.any(node.bias):
                x = g.op("Add", [x, g.const("fc_b", node.bias)], "fc_bias")
        else:  # pragma: no cover - network() lists no other kind
            raise DlibFormatError(f"no ONNX for {node.kind}")
    g.nodes[-1].output[0] = OUTPUT_NAME
    rows, cols = net.input_size
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, rows, cols])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", EMBEDDING_SIZE])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="rudolph",
        doc_string=(
            "dlib face recognition ResNet v1 (CC0), from face_recognition_models "
            f"{PACKAGE_VERSION}. Input 'chip': float32 NCHW RGB 0..255, {rows}x{cols}, a face "
            "aligned as dlib's get_face_chip_details(size=150, padding=0.25). Output "
            f"'embedding': [N, {EMBEDDING_SIZE}]; the same person is within 0.6 (L2)."
        ),
    )
    model.ir_version = 8
    return model


def _pad_to(g: _Graph, x: str, shape: Shape, full: Shape) -> str:
    if shape == full:
        return x
    pads = np.array([0, 0, 0, 0, 0, *(f - s for f, s in zip(full, shape, strict=True))], np.int64)
    return g.op("Pad", [x, g.const("pads", pads)], "pad_zeros")


def build_onnx(dat_path: Path, out_path: Path) -> None:
    """Convert dlib's .dat at ``dat_path`` into the ONNX file ``out_path`` (atomically)."""
    save_model(_build_model(read_dat(Path(dat_path).read_bytes())), Path(out_path))


def default_dat_path() -> Path:
    """The weights file of the installed ``face_recognition_models`` package."""
    try:
        ref = resources.files(PACKAGE).joinpath("models", WEIGHTS)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"package {PACKAGE.replace('_', '-')}=={PACKAGE_VERSION} is not installed"
        ) from exc
    path = Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(f"dlib's face recognition weights are not at {path}")
    return path


def ensure_onnx(out_path: Path) -> Path:
    """The ONNX file at ``out_path``, converted from the installed .dat once (~1 s) if missing;
    concurrent builders are harmless (written to a temporary name, then renamed)."""
    if out_path.is_file():
        return out_path
    try:
        build_onnx(default_dat_path(), out_path)
    except (OSError, ValueError, KeyError, ImportError, struct.error) as exc:
        raise ModelError(
            f"cannot build the face embedding model at {out_path} ({type(exc).__name__}: "
            f"{exc}): run `make setup` (it installs {PACKAGE}=={PACKAGE_VERSION} and onnx) or "
            "set RUDOLPH_MODEL_DIR to a writable folder"
        ) from exc
    return out_path
