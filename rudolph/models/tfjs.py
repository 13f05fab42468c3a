"""A TF.js graph model (``model.json`` + weight shards) turned into ONNX with numpy and onnx only.

TensorFlow's own route (tfjs -> SavedModel -> tf2onnx) needs TensorFlow, over a gigabyte; the
graphs we convert use a dozen ops, so this module reads the TF.js JSON (a ``GraphDef`` in JSON
form plus a weights manifest), folds what is constant, and writes one ONNX node per op.

Layouts: TF convolutions here are NHWC, ONNX's are NCHW. Every TF tensor is kept as an ONNX
tensor plus a permutation (``tf = transpose(onnx, perm)``), so TF's transposes cost nothing,
elementwise ops pass the permutation on, and only convolutions, pools, resizes and reshapes ask
for a given layout (a Transpose node is written only where the layouts really differ).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OPSET = 17

_DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "uint8": np.uint8,
}
_QUANTISED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def read_weights(
    manifest: Sequence[Mapping[str, Any]], shards: Mapping[str, bytes]
) -> dict[str, np.ndarray]:
    """Every weight of a TF.js weights manifest as a numpy array, dequantised to its dtype.

    Weights are stored back to back in the order of the manifest, across its shard files.
    """
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join(shards[path] for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                stored = np.dtype(_QUANTISED[quant["dtype"]])
            else:
                stored = np.dtype(_DTYPES[spec["dtype"]])
            size = count * stored.itemsize
            if offset + size > len(data):
                raise ValueError(f"weights end before {spec['name']}")
            raw = np.frombuffer(data, dtype=stored.newbyteorder("<"), count=count, offset=offset)
            offset += size
            if quant and quant["dtype"] != "float16":
                value = raw.astype(np.float32) * float(quant["scale"]) + float(quant["min"])
            else:
                value = raw
            weights[spec["name"]] = value.astype(_DTYPES[spec["dtype"]]).reshape(shape)
        if offset != len(data):
            raise ValueError(f"weights shard has {len(data) - offset} bytes the manifest lacks")
    return weights


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    attr: dict[str, Any]


@dataclass
class _Tensor:
    """A TF tensor as an ONNX tensor: ``tf = transpose(onnx, perm)``; ``shape`` is TF's."""

    name: str
    perm: tuple[int, ...]
    shape: tuple[int, ...]


def _attr_ints(node: _Node, key: str) -> list[int]:
    return [int(v) for v in node.attr.get(key, {}).get("list", {}).get("i", [])]


def _attr_str(node: _Node, key: str) -> str:
    raw = node.attr.get(key, {}).get("s", "")
    return base64.b64decode(raw).decode() if raw else ""


def _attr_float(node: _Node, key: str, default: float) -> float:
    return float(node.attr.get(key, {}).get("f", default))


def _attr_bool(node: _Node, key: str) -> bool:
    return bool(node.attr.get(key, {}).get("b", False))


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


_NHWC_AS_NCHW = (0, 2, 3, 1)  # a TF NHWC tensor over an ONNX NCHW one


class _Converter:
    def __init__(self, nodes: list[_Node], weights: Mapping[str, np.ndarray]) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes = {n.name: n for n in nodes}
        self.weights = weights
        self.values: dict[str, np.ndarray | _Tensor] = {}
        self.onnx_nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.inputs: list[Any] = []
        self._count = 0

    # -- helpers -----------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint.replace('/', '_')}_{self._count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def emit(
        self, op: str, inputs: list[str], hint: str, outputs: int = 1, **attrs: Any
    ) -> list[str]:
        names = [self.fresh(hint) for _ in range(outputs)]
        self.onnx_nodes.append(self.helper.make_node(op, inputs, names, name=names[0], **attrs))
        return names

    def layout(self, t: _Tensor, perm: Sequence[int]) -> str:
        """The ONNX name of `t` with TF = transpose(onnx, perm); a Transpose node if needed."""
        perm = tuple(perm)
        if t.perm == perm:
            return t.name
        # onnx_now = transpose(tf, inv(t.perm)); want onnx_new = transpose(tf, inv(perm))
        # = transpose(onnx_now, t.perm[inv(perm)])
        inv_want = _inverse(perm)
        move = tuple(t.perm[i] for i in inv_want)
        return self.emit("Transpose", [t.name], "transpose", perm=list(move))[0]

    def as_onnx(self, value: np.ndarray | _Tensor, perm: Sequence[int], hint: str) -> str:
        """A tensor or a constant in the ONNX layout `perm` (constants broadcast from TF's)."""
        if isinstance(value, _Tensor):
            return self.layout(value, perm)
        rank = len(perm)
        arr = np.asarray(value)
        arr = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
        return self.const(np.transpose(arr, _inverse(perm)), hint)

    def value(self, ref: str) -> np.ndarray | _Tensor:
        name, _, index = ref.partition(":")
        self.visit(name)
        key = name if not index or index == "0" else f"{name}:{index}"
        return self.values[key]

    # -- ops ---------------------------------------------------------------------------------

    def visit(self, name: str) -> None:
        if name in self.values:
            return
        node = self.nodes[name]
        inputs = [self.value(i) for i in node.inputs if not i.startswith("^")]
        handler = getattr(self, f"op_{node.op}", None)
        if handler is None:
            raise ValueError(f"TF.js op {node.op} ({name}) is not supported by this converter")
        if node.op != "Placeholder" and all(isinstance(v, np.ndarray) for v in inputs):
            folder = getattr(self, f"fold_{node.op}", None)
            if folder is not None:
                self.values[name] = folder(node, *inputs)
                return
        result = handler(node, *inputs)
        if isinstance(result, list):
            for i, item in enumerate(result):
                self.values[name if i == 0 else f"{name}:{i}"] = item
        else:
            self.values[name] = result

    def op_Const(self, node: _Node) -> np.ndarray:
        if node.name not in self.weights:
            raise ValueError(f"constant {node.name} has no weights")
        return self.weights[node.name]

    def op_Placeholder(self, node: _Node) -> _Tensor:
        from onnx import TensorProto

        dims = [int(d.get("size", -1)) for d in node.attr["shape"]["shape"]["dim"]]
        self.inputs.append(self.helper.make_tensor_value_info(node.name, TensorProto.FLOAT, dims))
        return _Tensor(node.name, tuple(range(len(dims))), tuple(dims))

    def op_Identity(self, node: _Node, x: np.ndarray | _Tensor) -> np.ndarray | _Tensor:
        return x

    def fold_Identity(self, node: _Node, x: np.ndarray) -> np.ndarray:
        return x

    def op_Transpose(self, node: _Node, x: _Tensor, perm: np.ndarray) -> _Tensor:
        p = [int(i) for i in perm]
        return _Tensor(x.name, tuple(x.perm[i] for i in p), tuple(x.shape[i] for i in p))

    def fold_Transpose(self, node: _Node, x: np.ndarray, perm: np.ndarray) -> np.ndarray:
        return np.transpose(x, [int(i) for i in perm])

    def _binary(self, node: _Node, op: str, a: Any, b: Any) -> _Tensor:
        ref = a if isinstance(a, _Tensor) else b
        shape = np.broadcast_shapes(
            a.shape if isinstance(a, _Tensor) else np.shape(a),
            b.shape if isinstance(b, _Tensor) else np.shape(b),
        )
        if len(shape) != len(ref.shape):
            raise ValueError(f"{node.name}: broadcasting raises the rank")
        out = self.emit(
            op,
            [self.as_onnx(a, ref.perm, node.name), self.as_onnx(b, ref.perm, node.name)],
            node.name,
        )[0]
        return _Tensor(out, ref.perm, tuple(int(s) for s in shape))

    def op_Add(self, node: _Node, a: Any, b: Any) -> _Tensor:
        return self._binary(node, "Add", a, b)

    op_AddV2 = op_Add

    def fold_Add(self, node: _Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        total: np.ndarray = np.add(a, b)
        return total

    fold_AddV2 = fold_Add

    def op_Mul(self, node: _Node, a: Any, b: Any) -> _Tensor:
        return self._binary(node, "Mul", a, b)

    def op_Sub(self, node: _Node, a: Any, b: Any) -> _Tensor:
        return self._binary(node, "Sub", a, b)

    def fold_SparseToDense(
        self,
        node: _Node,
        indices: np.ndarray,
        shape: np.ndarray,
        values: np.ndarray,
        default: np.ndarray,
    ) -> np.ndarray:
        out = np.full([int(s) for s in np.ravel(shape)], default, dtype=values.dtype)
        idx = np.asarray(indices)
        idx = idx if idx.ndim == 2 else idx.reshape(-1, 1)
        vals = np.broadcast_to(values, (len(idx),))
        for i, v in zip(idx, vals, strict=True):
            out[tuple(int(k) for k in i)] = v
        return out

    def op_SparseToDense(self, node: _Node, *args: Any) -> _Tensor:
        raise ValueError(f"{node.name}: SparseToDense is only supported on constants")

    def _unary(self, node: _Node, op: str, x: _Tensor, **attrs: Any) -> _Tensor:
        out = self.emit(op, [x.name], node.name, **attrs)[0]
        return _Tensor(out, x.perm, x.shape)

    def op_LeakyRelu(self, node: _Node, x: _Tensor) -> _Tensor:
        return self._unary(node, "LeakyRelu", x, alpha=_attr_float(node, "alpha", 0.2))

    def op_Relu(self, node: _Node, x: _Tensor) -> _Tensor:
        return self._unary(node, "Relu", x)

    def op_Sigmoid(self, node: _Node, x: _Tensor) -> _Tensor:
        return self._unary(node, "Sigmoid", x)

    def _pad(self, node: _Node, x: _Tensor, paddings: np.ndarray, value: float) -> _Tensor:
        pads = np.asarray(paddings, dtype=np.int64).reshape(len(x.shape), 2)
        inv = _inverse(x.perm)  # onnx axis j holds TF axis inv[j]
        begins = [int(pads[inv[j], 0]) for j in range(len(inv))]
        ends = [int(pads[inv[j], 1]) for j in range(len(inv))]
        inputs = [x.name, self.const(np.array(begins + ends, dtype=np.int64), "pads")]
        if value != 0.0:
            inputs.append(self.const(np.array(value, dtype=np.float32), "pad_value"))
        out = self.emit("Pad", inputs, node.name, mode="constant")[0]
        shape = tuple(int(s + b + e) for s, (b, e) in zip(x.shape, pads, strict=True))
        return _Tensor(out, x.perm, shape)

    def op_Pad(self, node: _Node, x: _Tensor, paddings: np.ndarray) -> _Tensor:
        return self._pad(node, x, paddings, 0.0)

    def op_PadV2(self, node: _Node, x: _Tensor, paddings: np.ndarray, value: Any) -> _Tensor:
        return self._pad(node, x, paddings, float(np.asarray(value)))

    def _nhwc(self, node: _Node) -> None:
        fmt = _attr_str(node, "data_format") or "NHWC"
        if fmt != "NHWC":
            raise ValueError(f"{node.name}: data_format {fmt} is not supported")
        if (_attr_str(node, "padding") or "VALID") != "VALID":
            raise ValueError(f"{node.name}: only VALID padding is supported (pads come before)")

    @staticmethod
    def _out(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
        return (size - dilation * (kernel - 1) - 1) // stride + 1

    def op_Conv2D(self, node: _Node, x: _Tensor, w: np.ndarray) -> _Tensor:
        self._nhwc(node)
        strides = _attr_ints(node, "strides") or [1, 1, 1, 1]
        dilations = _attr_ints(node, "dilations") or [1, 1, 1, 1]
        kh, kw, cin, cout = (int(s) for s in w.shape)
        n, h, wd, c = x.shape
        if c % cin:
            raise ValueError(f"{node.name}: {c} input channels, filter takes {cin}")
        weight = self.const(np.transpose(w, (3, 2, 0, 1)).astype(np.float32), "filter")
        out = self.emit(
            "Conv",
            [self.layout(x, _NHWC_AS_NCHW), weight],
            node.name,
            kernel_shape=[kh, kw],
            strides=strides[1:3],
            dilations=dilations[1:3],
            group=c // cin,
        )[0]
        shape = (
            n,
            self._out(h, kh, strides[1], dilations[1]),
            self._out(wd, kw, strides[2], dilations[2]),
            cout,
        )
        return _Tensor(out, _NHWC_AS_NCHW, shape)

    def op_MaxPool(self, node: _Node, x: _Tensor) -> _Tensor:
        self._nhwc(node)
        ksize = _attr_ints(node, "ksize")
        strides = _attr_ints(node, "strides")
        out = self.emit(
            "MaxPool",
            [self.layout(x, _NHWC_AS_NCHW)],
            node.name,
            kernel_shape=ksize[1:3],
            strides=strides[1:3],
        )[0]
        n, h, w, c = x.shape
        shape = (n, self._out(h, ksize[1], strides[1]), self._out(w, ksize[2], strides[2]), c)
        return _Tensor(out, _NHWC_AS_NCHW, shape)

    def op_ResizeBilinear(self, node: _Node, x: _Tensor, size: np.ndarray) -> _Tensor:
        if _attr_bool(node, "align_corners"):
            mode = "align_corners"
        elif _attr_bool(node, "half_pixel_centers"):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        h, w = (int(s) for s in size)
        n, _, _, c = x.shape
        sizes = self.const(np.array([n, c, h, w], dtype=np.int64), "sizes")
        out = self.emit(
            "Resize",
            [self.layout(x, _NHWC_AS_NCHW), "", "", sizes],
            node.name,
            mode="linear",
            coordinate_transformation_mode=mode,
        )[0]
        return _Tensor(out, _NHWC_AS_NCHW, (n, h, w, c))

    def op_ConcatV2(self, node: _Node, *args: Any) -> _Tensor:
        *parts, axis_value = args
        first = next(p for p in parts if isinstance(p, _Tensor))
        axis = int(axis_value) % len(first.shape)
        names = [self.as_onnx(p, first.perm, node.name) for p in parts]
        out = self.emit("Concat", names, node.name, axis=first.perm[axis])[0]
        shape = list(first.shape)
        shape[axis] = sum((p.shape if isinstance(p, _Tensor) else np.shape(p))[axis] for p in parts)
        return _Tensor(out, first.perm, tuple(int(s) for s in shape))

    def op_SplitV(
        self, node: _Node, x: _Tensor, sizes: np.ndarray, axis: np.ndarray
    ) -> list[_Tensor]:
        ax = int(axis) % len(x.shape)
        split = [int(s) for s in np.ravel(sizes)]
        if -1 in split:
            split[split.index(-1)] = x.shape[ax] - (sum(split) + 1)
        outs = self.emit(
            "Split",
            [x.name, self.const(np.array(split, dtype=np.int64), "split")],
            node.name,
            outputs=len(split),
            axis=x.perm[ax],
        )
        result: list[_Tensor] = []
        for name, size in zip(outs, split, strict=True):
            shape = list(x.shape)
            shape[ax] = size
            result.append(_Tensor(name, x.perm, tuple(shape)))
        return result

    def op_Reshape(self, node: _Node, x: _Tensor, shape: np.ndarray) -> _Tensor:
        target = [int(s) for s in np.ravel(shape)]
        total = int(np.prod(x.shape))
        if target.count(-1) == 1:
            known = int(np.prod([s for s in target if s != -1]))
            target[target.index(-1)] = total // known
        if int(np.prod(target)) != total:
            raise ValueError(f"{node.name}: cannot reshape {x.shape} to {target}")
        identity = tuple(range(len(x.shape)))
        out = self.emit(
            "Reshape",
            [self.layout(x, identity), self.const(np.array(target, dtype=np.int64), "shape")],
            node.name,
        )[0]
        return _Tensor(out, tuple(range(len(target))), tuple(target))


def _topology(model: Mapping[str, Any]) -> list[_Node]:
    return [
        _Node(n["name"], n["op"], list(n.get("input", [])), dict(n.get("attr", {})))
        for n in model["modelTopology"]["node"]
    ]


def to_onnx(
    model_json: Mapping[str, Any],
    shards: Mapping[str, bytes],
    outputs: Iterable[tuple[str, str]],
    *,
    doc: str = "",
    graph_name: str = "tfjs",
) -> Any:
    """The ONNX model of a TF.js graph model; `outputs` pairs a TF node with an ONNX name."""
    from onnx import TensorProto, helper

    weights = read_weights(model_json["weightsManifest"], shards)
    conv = _Converter(_topology(model_json), weights)
    graph_outputs = []
    for tf_name, onnx_name in outputs:
        value = conv.value(tf_name)
        if not isinstance(value, _Tensor):
            raise ValueError(f"output {tf_name} is a constant")
        name = conv.layout(value, tuple(range(len(value.shape))))
        conv.onnx_nodes.append(helper.make_node("Identity", [name], [onnx_name], name=onnx_name))
        graph_outputs.append(
            helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, list(value.shape))
        )
    graph = helper.make_graph(
        conv.onnx_nodes, graph_name, conv.inputs, graph_outputs, initializer=conv.initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="rudolph",
        doc_string=doc,
    )
    model.ir_version = 8  # loadable by older onnxruntime releases too
    return model


def load_json(raw: bytes | str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    if data.get("format") != "graph-model":
        raise ValueError(f"not a TF.js graph model (format {data.get('format')!r})")
    return data
