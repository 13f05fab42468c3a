"""What every local model shares: an onnxruntime CPU session, and writing a derived ONNX file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def cpu_session(onnx_path: Path, threads: int | None) -> Any:
    """An onnxruntime session on the CPU; `threads` caps its intra-op threads (None: all)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def save_model(model: Any, out_path: Path) -> None:
    """Check and write an ONNX model, atomically: concurrent builders are harmless."""
    import onnx

    onnx.checker.check_model(model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
