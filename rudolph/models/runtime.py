"""What every local model shares: an onnxruntime CPU session, and writing a derived ONNX file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
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


def ensure_built(
    out_path: Path,
    candidates: list[Path],
    build: Callable[[Path, Path], None],
    what: str,
    source: str,
    fetch: str,
    errors: tuple[type[BaseException], ...],
) -> Path:
    """The ONNX file at ``out_path``, built from the first of ``candidates`` (a download setup
    left, `source` named, fetched by the command `fetch`) if missing; a ModelError that names
    the fix otherwise."""
    from rudolph.errors import ModelError

    if out_path.is_file():
        return out_path
    download = next((c for c in candidates if c.is_file()), None)
    if download is None:
        raise ModelError(
            f"the {what} is not at {out_path} and {source} is not in "
            f"{' or '.join(str(c.parent) for c in candidates)}: run `make setup` (it fetches "
            f"it with `{fetch}`)"
        )
    caught: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, ImportError, *errors)
    try:
        build(download, out_path)
    except caught as exc:
        raise ModelError(
            f"cannot build the {what} at {out_path} ({type(exc).__name__}: {exc}): "
            "run `make setup` or set RUDOLPH_MODEL_DIR to a writable folder"
        ) from exc
    return out_path
