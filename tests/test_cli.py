"""`rudolph analyze` as a user runs it: bad input becomes a record with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from rudolph.cli import main
from rudolph.settings import get_settings
from tests.photos import PHOTOS, encode, load


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("RUDOLPH_ANALYZER", raising=False)
    get_settings.cache_clear()
    return CliRunner()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    jpeg = encode(load("chelsea"), "JPEG")
    files = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "notes.jpg": b"shopping list: milk, eggs\n",
        "tiny.png": encode(Image.new("RGB", (16, 16), "red"), "PNG"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


EXPECTED_ERRORS = {
    "empty.jpg": "EmptyImage: the file is empty (0 bytes): the upload did not complete; "
    "upload the image again",
    "truncated.jpg": "UnreadableImage: the JPEG data is truncated or corrupt (image file is "
    "truncated",
    "notes.jpg": "UnreadableImage: not an image (26 bytes, it starts with text 'shopping lis'): "
    "upload a JPEG, PNG, WebP, TIFF, BMP or GIF file",
    "tiny.png": "ImageTooSmall: image is 16x16 px; rudolph needs at least 32 px a side to find "
    "anything in it: upload a larger image",
}


def test_bad_inputs_become_failed_records_and_good_ones_still_complete(
    runner: CliRunner, bad_inputs: dict[str, Path]
) -> None:
    paths = [str(PHOTOS["chelsea"]), *map(str, bad_inputs.values())]
    result = runner.invoke(main, ["analyze", "--json", *paths])
    assert result.exit_code == 1, result.output  # some images failed entirely
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == paths
    good, *bad = records
    assert good["status"] == "done" and "Cat" in [label["name"] for label in good["labels"]]
    for record, name in zip(bad, bad_inputs, strict=True):
        assert record["status"] == "failed"
        assert set(record["errors"]) == {"labels", "text", "faces"}
        for message in record["errors"].values():
            assert message.startswith(EXPECTED_ERRORS[name]), (name, message)
        assert record["labels"] == record["text"] == record["faces"] == []


def test_json_record_shape(runner: CliRunner) -> None:
    result = runner.invoke(main, ["analyze", "--json", str(PHOTOS["astronaut"])])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["width"] == 512 and record["height"] == 512
    assert record["analyzer"]["backend"] == "local"
    assert set(record["analyzer"]["versions"]) == {"labels", "text", "faces"}
    (face,) = record["faces"]
    assert 0 < face["box"]["left"] < 1 and 0 < face["box"]["width"] < 1
    assert [m["type"] for m in face["landmarks"]] == [
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
    ]
    person = next(label for label in record["labels"] if label["name"] == "Person")
    assert person["confidence"] == face["confidence"]


def test_features_option_runs_only_those(runner: CliRunner) -> None:
    result = runner.invoke(main, ["analyze", "--json", "--features", "text", str(PHOTOS["page"])])
    record = json.loads(result.stdout)
    assert record["faces"] == [] and record["labels"] == []
    assert list(record["analyzer"]["versions"]) == ["text"]
    lines = [t for t in record["text"] if t["type"] == "LINE"]
    words = [t for t in record["text"] if t["type"] == "WORD"]
    assert lines[0]["text"] == "Region-based segmentation"
    assert {w["parent_id"] for w in words} == {line["id"] for line in lines}


def test_table_output(runner: CliRunner) -> None:
    result = runner.invoke(main, ["analyze", str(PHOTOS["coffee"])])
    assert result.exit_code == 0
    assert "coffee.png" in result.stdout and "Coffee" in result.stdout


def test_table_output_keeps_a_long_path_on_one_line(runner: CliRunner, tmp_path: Path) -> None:
    # Piped output is not wrapped at 80 columns: a path stays whole, and grep finds it.
    folder = tmp_path / ("a-folder-with-a-long-name-" * 6)
    folder.mkdir()
    photo = folder / "coffee.png"
    photo.write_bytes(PHOTOS["coffee"].read_bytes())
    result = runner.invoke(main, ["analyze", str(photo)])
    assert result.exit_code == 0
    assert str(photo) in result.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("mk[red]R[/red][/:]x.png", "mk[red]R[/red][/:]x.png"),
        ("esc\x1b]0;PWNED\x07\x1b[5m.png", "esc\\x1b]0;PWNED\\x07\\x1b[5m.png"),
    ],
)
def test_names_and_errors_are_printed_as_text(
    runner: CliRunner, tmp_path: Path, name: str, shown: str
) -> None:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)  # "/" in [/red] is a folder
    (tmp_path / name).write_bytes(PHOTOS["coffee"].read_bytes())
    broken = tmp_path / ("broken-" + name)
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"[/:] not an image \x1b[5m")
    result = runner.invoke(main, ["analyze", str(tmp_path / name), str(broken)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1  # the broken one failed; nothing crashed
    assert shown in result.stdout and "\x1b" not in result.stdout
    assert "not an image" in result.stdout


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("", "is neither an image id"),
        ("cat.jpg", "is neither an image id"),
        ("s3://", "is not an s3://bucket/key address"),
        ("s3://bucket-only", "is not an s3://bucket/key address"),
        ("s3:///key", "is not an s3://bucket/key address"),
    ],
)
def test_show_says_what_a_target_looks_like(runner: CliRunner, target: str, says: str) -> None:
    # Refused before any request: no table is needed to say this.
    result = runner.invoke(main, ["show", target])
    assert result.exit_code == 2
    assert says in result.output and "ValidationException" not in result.output


def test_unknown_feature_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["analyze", "--features", "labels,colour", "x.jpg"])
    assert result.exit_code == 2
    assert "colour: choose from labels,text,faces" in result.output


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["analyze", str(tmp_path / "nope.jpg")])
    assert result.exit_code == 1
    assert "cannot read" in result.output and "No such file" in result.output


def test_bad_setting_says_which_variable(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUDOLPH_ANALYZER", "magic")
    get_settings.cache_clear()
    result = runner.invoke(main, ["analyze", str(PHOTOS["coffee"])])
    assert result.exit_code == 2
    assert "invalid settings: RUDOLPH_ANALYZER='magic'" in result.output
    assert "(fix or unset these variables)" in result.output
