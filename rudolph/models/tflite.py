"""A small TFLite-to-ONNX converter: read a ``.tflite`` flatbuffer, write ONNX with numpy + onnx.

Enough of the format for the emotion classifier fer ships (mini-Xception): one subgraph of
CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, ADD, MEAN and SOFTMAX, float32 activations, weights
either float32 or int8 with per-channel scales ("dynamic range" quantization: dequantized here,
so the ONNX graph computes in float32 throughout). No TensorFlow: the flatbuffer is read with
the PyPI package ``tflite`` (the flatc-generated Python bindings of TensorFlow's schema.fbs,
on ``flatbuffers`` alone), whose enums name the operators, types and options.

TFLite is NHWC with OHWI filters; the graph here is NCHW inside, with a transpose at the input
and the output left as it is (the classifier's output is [N, classes]).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator as Op

_DTYPES: dict[int, Any] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT8: np.int8,
}


class TFLiteFormatError(ValueError):
    """The file is not a TFLite model this converter understands."""


def _name(enum: type, value: int) -> str:
    """The schema's name of an enum value (BuiltinOperator, TensorType, ...), else the number."""
    names = {v: k for k, v in vars(enum).items() if not k.startswith("_")}
    return names.get(value, str(value))


def _ints(values: Any) -> tuple[int, ...]:
    """An int vector of the bindings: a numpy array, or 0 when the field is absent."""
    return tuple(int(v) for v in values) if isinstance(values, np.ndarray) else ()


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    value: np.ndarray | None  # constants (weights), dequantized to float32; None: activations
    quantized: bool = False  # stored as int8 (value is dequantized)


@dataclass(frozen=True)
class Operator:
    code: int  # a BuiltinOperator
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any  # its BuiltinOptions as the bindings read them (tflite.Conv2DOptions...), or None


@dataclass(frozen=True)
class Model:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _tensor(tensor: Any, model: Any) -> Tensor:
    shape = _ints(tensor.ShapeAsNumpy())
    kind = tensor.Type()
    name = (tensor.Name() or b"").decode("utf-8", "replace")
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if not isinstance(raw, np.ndarray) or not len(raw):
        return Tensor(name, shape, None)
    if kind not in _DTYPES:
        raise TFLiteFormatError(
            f"tensor {name!r}: type {_name(tflite.TensorType, kind)} is not supported"
        )
    value = raw.view(np.dtype(_DTYPES[kind]).newbyteorder("<")).reshape(shape)
    int8 = kind == tflite.TensorType.INT8
    if int8:  # per-channel (or per-tensor) scale and zero point
        quant = tensor.Quantization()
        if quant is None or not quant.ScaleLength():
            raise TFLiteFormatError(f"tensor {name!r}: int8 without quantization parameters")
        scale = quant.ScaleAsNumpy().astype(np.float64)
        zero = (
            quant.ZeroPointAsNumpy().astype(np.float64)
            if quant.ZeroPointLength()
            else np.zeros_like(scale)
        )
        along = [1] * len(shape)
        if len(scale) > 1:
            along[quant.QuantizedDimension()] = -1
        value = (value.astype(np.float64) - zero.reshape(along)) * scale.reshape(along)
    return Tensor(
        name,
        shape,
        np.asarray(value, dtype=np.int32 if kind == tflite.TensorType.INT32 else np.float32),
        int8,
    )


def _options(op: Any) -> Any:
    """The operator's BuiltinOptions as the bindings' class of that name, or None."""
    table = op.BuiltinOptions()
    if table is None or op.BuiltinOptionsType() == tflite.BuiltinOptions.NONE:
        return None
    kind = _name(tflite.BuiltinOptions, op.BuiltinOptionsType())
    cls = getattr(tflite, kind, None)
    if cls is None:
        raise TFLiteFormatError(f"builtin options {kind} are not known to the tflite package")
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return options


def read(data: bytes) -> Model:
    """The first subgraph of a TFLite flatbuffer."""
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise TFLiteFormatError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        root = tflite.Model.GetRootAs(data, 0)
        codes = [root.OperatorCodes(i).BuiltinCode() for i in range(root.OperatorCodesLength())]
        if root.SubgraphsLength() != 1:
            raise TFLiteFormatError(f"{root.SubgraphsLength()} subgraphs; one expected")
        graph = root.Subgraphs(0)
        tensors = [_tensor(graph.Tensors(i), root) for i in range(graph.TensorsLength())]
        operators = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            operators.append(
                Operator(
                    code=codes[op.OpcodeIndex()],
                    inputs=_ints(op.InputsAsNumpy()),
                    outputs=_ints(op.OutputsAsNumpy()),
                    options=_options(op),
                )
            )
        return Model(
            tensors=tensors,
            operators=operators,
            inputs=_ints(graph.InputsAsNumpy()),
            outputs=_ints(graph.OutputsAsNumpy()),
        )
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, TFLiteFormatError):
            raise
        raise TFLiteFormatError(f"truncated or corrupt TFLite flatbuffer: {exc}") from exc


def _expect(op: Operator, kind: type) -> Any:
    """``op``'s options, which must be of the bindings' class ``kind``."""
    if not isinstance(op.options, kind):
        raise TFLiteFormatError(
            f"{_name(Op, op.code)} without {kind.__name__} (options: {type(op.options).__name__})"
        )
    return op.options


def _padding(options: Any) -> dict[str, Any]:
    # TF's SAME puts the odd pixel at the end, as ONNX's SAME_UPPER does.
    return {"auto_pad": "SAME_UPPER" if options.Padding() == tflite.Padding.SAME else "VALID"}


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
        if fused == tflite.ActivationFunctionType.NONE:
            return out
        if fused != tflite.ActivationFunctionType.RELU:
            name = _name(tflite.ActivationFunctionType, fused)
            raise TFLiteFormatError(f"fused activation {name} is not supported")
        nodes.append(helper.make_node("Relu", [out], [out + "_relu"]))
        return out + "_relu"

    (source,) = model.inputs
    input_name = "input"
    nodes.append(helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]))
    names[source] = "nchw"
    for number, op in enumerate(model.operators):
        out = f"op{number}"
        if op.code in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D):
            filters = weight(op.inputs[1])
            if op.code == Op.CONV_2D:
                options = _expect(op, tflite.Conv2DOptions)
                w = filters.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                group = 1
            else:
                options = _expect(op, tflite.DepthwiseConv2DOptions)
                w = filters.transpose(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW
                group = w.shape[0] // (options.DepthMultiplier() or 1)
            fused = options.FusedActivationFunction()
            dilation = (options.DilationHFactor(), options.DilationWFactor())
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
                    strides=[options.StrideH(), options.StrideW()],
                    dilations=list(dilation),
                    group=group,
                    **_padding(options),
                )
            )
            out = activation(out, fused)
        elif op.code == Op.MAX_POOL_2D:
            options = _expect(op, tflite.Pool2DOptions)
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [names[op.inputs[0]]],
                    [out],
                    kernel_shape=[options.FilterHeight(), options.FilterWidth()],
                    strides=[options.StrideH(), options.StrideW()],
                    **_padding(options),
                )
            )
            out = activation(out, options.FusedActivationFunction())
        elif op.code == Op.ADD:
            nodes.append(helper.make_node("Add", [names[op.inputs[0]], names[op.inputs[1]]], [out]))
            fused = (
                _expect(op, tflite.AddOptions).FusedActivationFunction()
                if op.options is not None
                else tflite.ActivationFunctionType.NONE
            )
            out = activation(out, fused)
        elif op.code == Op.MEAN:
            axes = [int(a) for a in weight(op.inputs[1]).ravel()]
            keep = (
                bool(_expect(op, tflite.ReducerOptions).KeepDims())
                if op.options is not None
                else False
            )
            if sorted(axes) != [1, 2] or keep:
                raise TFLiteFormatError(f"MEAN over {axes} (keep_dims={keep}) is not supported")
            nodes.append(helper.make_node("GlobalAveragePool", [names[op.inputs[0]]], [out]))
            nodes.append(helper.make_node("Flatten", [out], [out + "_flat"], axis=1))
            out = out + "_flat"
        elif op.code == Op.SOFTMAX:
            beta = (
                float(_expect(op, tflite.SoftmaxOptions).Beta()) if op.options is not None else 1.0
            )
            if beta != 1.0:
                raise TFLiteFormatError(f"SOFTMAX with beta {beta} is not supported")
            nodes.append(helper.make_node("Softmax", [names[op.inputs[0]]], [out], axis=-1))
        else:
            raise TFLiteFormatError(f"operator {_name(Op, op.code)} is not supported")
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
