"""The `rudolph` command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from rudolph.errors import RudolphError
from rudolph.record import Record
from rudolph.settings import FEATURES, Feature, get_settings

F = TypeVar("F", bound=Callable[..., Any])
# soft_wrap: an error line stays one line, whatever the terminal width (and greppable).
err = Console(stderr=True, soft_wrap=True)


def _friendly_errors(command: F) -> F:
    """Print RudolphErrors as one clear line and exit 2, instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RudolphError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _features(value: str) -> tuple[Feature, ...]:
    chosen = tuple(f.strip() for f in value.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FEATURES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose from {','.join(FEATURES)}"
        )
    return chosen  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rudolph")
def main() -> None:
    """rudolph: labels, text and faces from images, searchable."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--backend",
    type=click.Choice(["local", "rekognition"]),
    help="Analysis backend (default: RUDOLPH_ANALYZER, else local).",
)
@click.option(
    "--features",
    default=",".join(FEATURES),
    show_default=True,
    help="Comma-separated features to run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per image.")
@_friendly_errors
def analyze(paths: tuple[str, ...], backend: str | None, features: str, as_json: bool) -> None:
    """Analyse local image files.

    Exit status: 0 when every image was analysed (some features may have failed: see
    `errors`), 1 when any image failed entirely.
    """
    from rudolph.analysis import analyze as analyze_image
    from rudolph.backends import get_analyzer
    from rudolph.source import ImageInput

    chosen = _features(features)
    analyzer = get_analyzer(get_settings(), backend)
    failed = 0
    for path in paths:
        started = time.perf_counter()
        try:
            image = ImageInput.from_path(path)
            image.data()
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot read {path}: {exc.strerror or exc}")
            failed += 1
            continue
        record = analyze_image(image, analyzer, chosen)
        failed += record.status == "failed"
        if as_json:
            click.echo(record.model_dump_json())
        else:
            _print_record(record, time.perf_counter() - started)
    sys.exit(1 if failed else 0)


def _print_record(record: Record, seconds: float) -> None:
    console = Console()
    console.print(
        f"[bold]{record.source}[/bold]  {record.status}  {seconds * 1000:.0f} ms", highlight=False
    )
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if record.width:
        table.add_row("size", f"{record.width}x{record.height} px")
    labels = ", ".join(f"{label.name} {label.confidence:.0f}%" for label in record.labels[:10])
    table.add_row("labels", labels or "-")
    lines = [t for t in record.text if t.type == "LINE"]
    table.add_row("text", "\n".join(f"{t.text} ({t.confidence:.0f}%)" for t in lines) or "-")
    table.add_row("faces", str(len(record.faces)))
    for feature, message in record.errors.items():
        table.add_row(f"error ({feature})", f"[red]{message}[/red]")
    for note in record.analyzer.notes if record.analyzer else []:
        table.add_row("note", note)
    console.print(table, highlight=False)


@main.group()
def models() -> None:
    """The local backend's model files."""


@models.command("build")
@_friendly_errors
def models_build() -> None:
    """Derive the local models (the labels ONNX file) now, so no worker pays for it later."""
    from rudolph.backends.local import LocalAnalyzer

    started = time.perf_counter()
    LocalAnalyzer(get_settings()).load(FEATURES)
    click.echo(
        f"local models ready in {time.perf_counter() - started:.1f} s ({get_settings().model_dir})"
    )
