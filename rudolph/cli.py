"""The `rudolph` command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.text import Text

from rudolph.console import cell, err, error, lines, out, table, warning
from rudolph.errors import RudolphError
from rudolph.printable import printable, printable_json
from rudolph.record import Face, Record
from rudolph.settings import get_settings
from rudolph.vocabulary import FAILED, FEATURES, QUEUES, SQS_QUEUES, Feature

if TYPE_CHECKING:
    from rich.console import Console

    from rudolph.devstack import Processes, Stack

F = TypeVar("F", bound=Callable[..., Any])


def _friendly_errors(command: F) -> F:
    """Print RudolphErrors as one clear line and exit 2, instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return command(*args, **kwargs)
        except RudolphError as exc:
            error(exc)
            sys.exit(2)
        except NoCredentialsError:
            error(
                "no AWS credentials found: configure them (AWS_PROFILE, an instance role...) "
                "or `source .rudolph/dev.env` for the local stack"
            )
            sys.exit(2)
        except (BotoCoreError, ClientError) as exc:
            error(f"AWS said: {exc}")
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
    from rudolph.images import decode
    from rudolph.source import ImageInput

    chosen = _features(features)
    settings = get_settings()
    analyzer = get_analyzer(settings, backend)
    decoder = partial(decode, budget_mb=settings.decode_budget_mb)
    failed = 0
    for path in paths:
        started = time.perf_counter()
        try:
            image = ImageInput.from_path(path, decoder)
            image.data()
        except OSError as exc:
            error(f"cannot read {path}: {exc.strerror or exc}")
            failed += 1
            continue
        record = analyze_image(image, analyzer, chosen)
        failed += record.status == FAILED
        if as_json:
            click.echo(printable_json(record.model_dump_json()))
        else:
            _print_record(record, time.perf_counter() - started)
    sys.exit(1 if failed else 0)


#: `rudolph show` lists this many faces one by one; `--json` has them all.
MAX_FACES_SHOWN = 20


def _face_line(face: Face) -> str:
    """One face as `rudolph show` prints it: confidence, smile, likeliest emotions, pose,
    quality (each only when the backend gave it)."""
    parts = [f"{face.confidence:.0f}%"]
    if face.smile:
        said = "smiling" if face.smile.value else "not smiling"
        parts.append(f"{said} {face.smile.confidence:.0f}%")
    if face.emotions:
        parts.append(" ".join(f"{e.type.lower()} {e.confidence:.0f}%" for e in face.emotions[:2]))
    if face.pose:
        pose = face.pose
        parts.append(f"roll {pose.roll:.0f} yaw {pose.yaw:.0f} pitch {pose.pitch:.0f} degrees")
    if face.quality:
        quality = face.quality
        parts.append(f"brightness {quality.brightness:.0f} sharpness {quality.sharpness:.0f}")
    return ", ".join(parts)


def _print_record(record: Record, seconds: float | None) -> None:
    console = out()
    name = record.source or f"s3://{record.bucket}/{record.key}"
    took = f"  {seconds * 1000:.0f} ms" if seconds is not None else ""
    console.print(Text.assemble(cell(name, "bold"), f"  {record.status}{took}"))
    grid = table("", "", header=False)
    grid.columns[0].style = "bold"
    if record.width:
        grid.add_row("size", f"{record.width}x{record.height} px")
    labels = ", ".join(f"{label.name} {label.confidence:.0f}%" for label in record.labels[:10])
    grid.add_row("labels", cell(labels or "-"))
    found = [f"{t.text} ({t.confidence:.0f}%)" for t in record.text if t.type == "LINE"]
    grid.add_row("text", lines(found or ["-"]))
    grid.add_row("faces", str(len(record.faces)))
    for number, face in enumerate(record.faces[:MAX_FACES_SHOWN], 1):
        grid.add_row(f"face {number}", cell(_face_line(face)))
    if len(record.faces) > MAX_FACES_SHOWN:
        grid.add_row("", f"and {len(record.faces) - MAX_FACES_SHOWN} more faces (--json)")
    for feature, message in record.errors.items():
        grid.add_row(f"error ({feature})", cell(message, "red"))
    for note in record.analyzer.notes if record.analyzer else []:
        grid.add_row("note", cell(note))
    console.print(grid)


@main.command()
@click.option(
    "--events",
    "route",
    type=click.Choice(["s3", "sns", "eventbridge"]),
    default="s3",
    show_default=True,
    help="How the buckets' events reach the queue: S3 notifications, an SNS topic, or an "
    "EventBridge rule on the default bus.",
)
@click.option("--raw-delivery", is_flag=True, help="With --events sns: no SNS envelope.")
@_friendly_errors
def init(route: str, raw_delivery: bool) -> None:
    """Create the buckets, queues, event route, table and index (idempotent)."""
    from rudolph.provision import init as provision
    from rudolph.routes import Route

    if raw_delivery and route != "sns":
        raise click.BadParameter("only applies with --events sns", param_hint="--raw-delivery")
    provision(get_settings(), say=click.echo, route=cast(Route, route), raw_delivery=raw_delivery)


@main.command()
@_friendly_errors
def listen() -> None:
    """Long-poll the SQS queue and enqueue one pipeline per uploaded image (Ctrl-C stops)."""
    from producer.listener import Listener
    from rudolph.logs import configure
    from rudolph.publishing import CeleryPublisher
    from workers import app

    configure()
    Listener(get_settings(), CeleryPublisher(app)).run()


@main.command()
@click.option("--older-than", type=float, help="Seconds pending (default RUDOLPH_PENDING_AFTER).")
@_friendly_errors
def reconcile(older_than: float | None) -> None:
    """Dispatch again the images left pending (their pipeline was lost)."""
    from producer.reconcile import reconcile as run
    from rudolph.publishing import CeleryPublisher
    from rudolph.store import RecordStore
    from workers import app

    settings = get_settings()
    threshold = settings.pending_after if older_than is None else older_than
    count = run(RecordStore(settings), CeleryPublisher(app), threshold)
    click.echo(f"{count} pending image(s) dispatched again (pending over {threshold:g} s)")


def _image_id_of(target: str) -> str:
    """The image id that TARGET (an image id or s3://bucket/key) names; a usage error else."""
    from rudolph.record import IMAGE_ID, image_id

    if target.startswith("s3://"):
        bucket, _, key = target.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise click.BadParameter(
                f"{target!r} is not an s3://bucket/key address: it needs a bucket and a key",
                param_hint="TARGET",
            )
        return image_id(bucket, key)
    if not IMAGE_ID.fullmatch(target):
        raise click.BadParameter(
            f"{target!r} is neither an image id (64 hex digits, as `rudolph search --json` "
            "prints) nor an s3://bucket/key address",
            param_hint="TARGET",
        )
    return target


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@_friendly_errors
def show(target: str, as_json: bool) -> None:
    """Show the record of IMAGE_ID or s3://bucket/key."""
    from rudolph.store import RecordStore

    wanted = _image_id_of(target)
    record = RecordStore(get_settings()).get(wanted)
    if record is None:
        error(
            f"no record for {printable(target)}: not uploaded, not yet analysed, or deleted "
            "(`rudolph search` finds image ids)"
        )
        sys.exit(1)
    settings = get_settings()
    persons: dict[int, str] = {}
    if settings.people_on:
        from rudolph.people import People

        persons = People(settings).persons_of_image(wanted)
    if as_json:
        import json

        dumped = record.model_dump(mode="json")
        for number, face in enumerate(dumped.get("faces", [])):
            face["person_id"] = persons.get(number)
        click.echo(printable_json(json.dumps(dumped)))
    else:
        _print_record(record, None)
        for number, person in sorted(persons.items()):
            click.echo(f"face {number}: person {person}")


# A query may start with "-" (`-label:cat`): words that are not options are the query's, and
# help is --help only, or `-hat` (without "hat") would print it.
@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]})
@click.argument("query", nargs=-1)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--after", metavar="CURSOR", help="Go on after a page: its `next` cursor.")
@click.option(
    "--sort", type=click.Choice(["score", "newest", "oldest"]), default="score", show_default=True
)
@click.option("--facets", is_flag=True, help="Also count labels, faces, text and status.")
@click.option("--json", "as_json", is_flag=True, help="The page as one JSON object.")
@_friendly_errors
def search(
    query: tuple[str, ...], limit: int, after: str | None, sort: str, facets: bool, as_json: bool
) -> None:
    """Find images matching QUERY: words (labels, parents, aliases, text), label:car,
    text:"no parking", faces>=2, smile:yes, emotion:happy, confidence>=90, key:prefix/,
    bucket:name, meta.NAME:value, person:"Ada Lovelace" or person:PERSON_ID (RUDOLPH_PEOPLE=on),
    -excluded, AND, OR, ( ). Several words are one query; no QUERY lists every image."""
    import dataclasses
    import json

    from rudolph.index import SortOrder
    from rudolph.people import search_index
    from rudolph.query import QuerySyntaxError

    order = cast(SortOrder, sort)  # click.Choice checked it
    text = " ".join(query)
    try:
        page = search_index(get_settings()).search(
            text, limit=limit, after=after, sort=order, facets=facets
        )
    except QuerySyntaxError as exc:
        error(f"{exc.problem} at column {exc.column}: {exc.hint}")
        err.print(cell(f"  {exc.query}"))
        err.print(f"  {' ' * (exc.column - 1)}^")
        sys.exit(2)
    except ValueError as exc:  # a bad --after, or a value the index refused
        error(exc)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(page)))
        return
    if not page.hits:
        click.echo(f"no images match {text!r}")
    else:
        grid = table("key", "score", "labels", "why")
        for hit in page.hits:
            # The strongest few reasons and labels; --json has them all.
            grid.add_row(
                cell(f"s3://{hit.bucket}/{hit.key}"),
                f"{hit.score:.2f}",
                cell(", ".join(hit.labels[:3])),
                cell("; ".join(hit.matched[:3])),
            )
        out().print(grid)
        click.echo(f"{len(page.hits)} of {page.total} images")
    if page.facets is not None:
        shown = ", ".join(f"{name} {count}" for name, count in page.facets.labels)
        click.echo(f"labels: {printable(shown or '-')}")
        click.echo(f"with faces: {page.facets.with_faces}  with text: {page.facets.with_text}")
        click.echo("status: " + (", ".join(f"{s} {n}" for s, n in page.facets.status) or "-"))
    if page.next_after:
        click.echo(f"next page: --after {page.next_after}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@_friendly_errors
def web(host: str, port: int) -> None:
    """Serve the search page and its JSON API (/api/search, /api/images/ID, /openapi.json).

    Images reach the browser as presigned S3 URLs, never with credentials. Set
    RUDOLPH_WEB_AUTH=user:password to require HTTP basic auth on every path.
    """
    from rudolph.web.server import serve

    serve(get_settings(), host, port)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _save_dev_state(console: Console, processes: Processes, stack: Stack, state: Path) -> None:
    from rudolph import devstack

    try:
        saved = devstack.save_stack(processes, stack, state)
    except Exception as exc:  # any failure: the previous state stays whole
        console.print(
            Text(
                f"could not save the local state ({type(exc).__name__}: {exc}); the next "
                "start loads the previous one and rebuilds the index from its table"
            )
        )
        return
    console.print(Text(f"saved {saved} in {state / 'aws-state'}"))


@main.command()
@click.option("--demo", is_flag=True, help="Also upload the sample photos and show results.")
@click.option(
    "--state-dir",
    default=".rudolph",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where logs, data and dev.env go.",
)
@click.option("--fresh", is_flag=True, help="Start empty: discard the buckets, table and index.")
@_friendly_errors
def dev(demo: bool, state_dir: str, fresh: bool) -> None:
    """Run the whole fleet locally (moto, OpenSearch 2.5.0 or with RUDOLPH_DEV_SEARCH=noida
    noida-db, Redis, worker, listener, Flower) until Ctrl-C.

    Ctrl-C saves the buckets and the table under the state folder; the next start loads them,
    and the search index keeps its data beside them (--fresh starts empty).
    """
    import os
    import signal
    import time

    from rudolph import devstack
    from rudolph.settings import Settings

    state = Path(state_dir)
    console = out()
    # SIGTERM too: stop what we started rather than orphan it. SIGINT explicitly: a shell
    # starts a background job (`make demo &`) with SIGINT ignored, and Ctrl-C must still work.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    processes = devstack.Processes(state / "logs")
    if demo:
        # The demo shows everything rudolph does, face identity included; say so, since that
        # is biometric data and off everywhere else unless RUDOLPH_PEOPLE=on is set.
        os.environ["RUDOLPH_PEOPLE"] = "on"
        console.print(
            "RUDOLPH_PEOPLE=on for the demo: each face gets an identity embedding "
            "(biometric data; off unless this setting says on)"
        )
    try:
        with devstack.running(processes):
            console.print(f"starting the local stack (logs in {state / 'logs'})...")
            stack = devstack.start_stack(processes, state, fresh=fresh)
            if stack.restored:
                how = "index rebuilt from the table" if stack.reindexed else "index kept"
                console.print(
                    Text(f"loaded the saved state: {stack.restored} ({how}; --fresh: empty)")
                )
            env_file = state / "dev.env"
            devstack.write_env(env_file, stack.env)
            grid = table("", "", header=False)
            for name, url in stack.urls.items():
                grid.add_row(name, url)
            grid.add_row("worker", f"celery -A workers worker -Q {','.join(QUEUES)}")
            grid.add_row("listener", "rudolph listen")
            console.print(grid)
            console.print(
                Text.assemble(
                    "in another shell: ",
                    (f"source {env_file}", "bold"),
                    ", then e.g. `rudolph search cat`",
                )
            )
            try:
                if demo:
                    from rudolph import demo as demo_run

                    # This process is a client of the stack too (boto3 reads credentials here).
                    os.environ.update(stack.env)
                    demo_run.run(Settings.from_env(), console)
                console.print("\nrunning; Ctrl-C stops every process started here")
                while not (dead := processes.dead()):
                    time.sleep(1)
                raise devstack.DevStackError(
                    f"{', '.join(dead)} stopped unexpectedly; see {state / 'logs'}"
                )
            except KeyboardInterrupt:
                console.print("stopping: saving the buckets and the table...")
                _save_dev_state(console, processes, stack, state)
                raise
    except KeyboardInterrupt:
        console.print("stopped")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="At most N messages (listing: default 100; --redrive: all).",
)
@click.option("--redrive", is_flag=True, help="Move the messages back to the event queue.")
@click.option("--yes", "-y", is_flag=True, help="With --redrive: do not ask for confirmation.")
@_friendly_errors
def dlq(as_json: bool, limit: int | None, redrive: bool, yes: bool) -> None:
    """List the dead-letter queue's messages and why they are there, or move them back.

    Listing leaves every message where it is. The reason comes from parsing the body again:
    a malformed message says what is wrong with it; one that parses failed to be enqueued
    (broker or table down) and only needs a redrive.
    """
    import json

    from rudolph.deadletters import DeadLetterQueue

    settings = get_settings()
    queue = DeadLetterQueue(settings)
    if redrive:
        _redrive(queue, settings.queue_name, limit, yes, as_json)
        return
    letters = queue.peek(limit or 100)
    if as_json:
        for letter in letters:
            click.echo(printable_json(json.dumps(letter.as_json(), ensure_ascii=False)))
        return
    if not letters:
        click.echo(f"{queue.name} is empty")
        return
    grid = table("message id", "first sent", "receives", "body", "reason")
    for letter in letters:
        grid.add_row(
            cell(letter.message_id),
            cell(letter.sent_at or "?"),
            "?" if letter.receive_count is None else str(letter.receive_count),
            cell(letter.preview),
            cell(letter.reason),
        )
    out().print(grid)
    malformed = sum(letter.malformed for letter in letters)
    click.echo(
        f"{len(letters)} message(s) in {queue.name} ({malformed} malformed); "
        "`rudolph dlq --redrive` moves them back to the event queue"
    )


def _redrive(queue: Any, source: str, limit: int | None, yes: bool, as_json: bool) -> None:
    import json

    from rudolph.provision import MAX_RECEIVES

    waiting = queue.approximate_count()
    if waiting == 0:
        click.echo(f"{queue.name} is empty: nothing to move")
        return
    if not yes:
        moving = waiting if limit is None else min(limit, waiting)
        click.confirm(f"move about {moving} message(s) from {queue.name} to {source}?", abort=True)
    report = queue.redrive(limit)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "moved": report.moved,
                    "still_malformed": report.still_malformed,
                    "failed": [{"message_id": i, "error": e} for i, e in report.failed],
                }
            )
        )
    else:
        click.echo(f"{report.moved} message(s) moved from {queue.name} to {source}")
    if report.still_malformed:
        warning(
            f"{len(report.still_malformed)} of them are still malformed "
            f"({', '.join(report.still_malformed)}): the listener will reject them again and "
            f"SQS will move them back to {queue.name} after {MAX_RECEIVES} receives"
        )
    for message_id, problem in report.failed:
        error(f"{message_id}: {problem}")
    if report.failed:
        sys.exit(1)


@main.command()
@click.option("--keep-old", is_flag=True, help="Keep the previous index (without the alias).")
@_friendly_errors
def reindex(keep_old: bool) -> None:
    """Rebuild the search index from the DynamoDB table (the source of truth).

    A new versioned index is filled from the table, then the alias moves to it in one step, so
    searches keep working throughout; writes made meanwhile are copied again afterwards.
    Exit status 1 when some documents could not be indexed.
    """
    from rudolph.index import SearchIndex, rebuild
    from rudolph.store import RecordStore

    settings = get_settings()
    store = RecordStore(settings)
    started = time.perf_counter()
    report = rebuild(SearchIndex(settings), store.scan(), again=store.scan, keep_old=keep_old)
    old = ", ".join(report.old) or "(no index)"
    click.echo(f"records read      {report.read} ({report.skipped} skipped: pending, no document)")
    click.echo(f"documents indexed {report.indexed}")
    click.echo(f"caught up         {report.caught_up} copied again, {report.removed} removed")
    click.echo(f"alias             {settings.index}: {old} -> {report.new}")
    if report.old:
        click.echo(f"old index         {'deleted' if report.old_deleted else 'kept'}")
    if settings.people_on:
        from rudolph.people import People

        click.echo(f"faces indexed     {People(settings).rebuild_faces()}")
    click.echo(f"took              {time.perf_counter() - started:.1f} s")
    for image, reason in report.failed[:10]:
        error(f"{image}: {reason}")
    if report.failed:
        error(
            f"{len(report.failed)} document(s) not indexed (see above): "
            "fix the cause and run `rudolph reindex` again"
        )
        sys.exit(1)


def _people() -> Any:
    """The People of the settings; a PeopleOffError when RUDOLPH_PEOPLE is off."""
    from rudolph.errors import PeopleOffError
    from rudolph.people import People

    settings = get_settings()
    if not settings.people_on:
        raise PeopleOffError("`rudolph people`")
    return People(settings)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per person and line.")
@click.pass_context
@_friendly_errors
def people(ctx: click.Context, as_json: bool) -> None:
    """The persons the faces cluster into (RUDOLPH_PEOPLE=on), most photos first.

    --json prints one object per line: person_id, name (null until named), face_count,
    image_ids.
    """
    if ctx.invoked_subcommand is not None:
        return
    import json

    summaries = _people().summaries()
    if as_json:
        for summary in summaries:
            click.echo(printable_json(json.dumps(summary.as_json())))
        return
    if not summaries:
        click.echo("no persons yet")
        return
    grid = table("person", "name", "photos", "faces")
    for summary in summaries:
        grid.add_row(
            summary.person_id,
            cell(summary.name or "-"),
            str(len(summary.image_ids)),
            str(summary.face_count),
        )
    out().print(grid)


@people.command("name")
@click.argument("person_id")
@click.argument("name")
@_friendly_errors
def people_name(person_id: str, name: str) -> None:
    """Name a person: `rudolph people name PERSON_ID "Ada Lovelace"`."""
    _people().name(person_id, name)
    click.echo(f"{printable(person_id)} is now {printable(name.strip())!r}")


@people.command("merge")
@click.argument("person_id")
@click.argument("other_id")
@_friendly_errors
def people_merge(person_id: str, other_id: str) -> None:
    """Merge OTHER_ID into PERSON_ID (one person, PERSON_ID's id and name)."""
    _people().merge(person_id, other_id)
    click.echo(f"{printable(other_id)} merged into {printable(person_id)}")


@people.command("forget")
@click.argument("person_id")
@_friendly_errors
def people_forget(person_id: str) -> None:
    """Delete a person's embeddings and assignments everywhere: the table's assignments, the
    face index (or, with Rekognition, the face collection's faces), the records' embeddings
    and FaceIds."""
    count = _people().forget(person_id)
    click.echo(f"{printable(person_id)} forgotten: {count} face(s) and their embeddings deleted")


@people.command("recluster")
@_friendly_errors
def people_recluster() -> None:
    """Cluster every face again (repairs merges and splits; names stay with the faces)."""
    report = _people().recluster()
    click.echo(
        f"{report.faces} face(s) into {report.persons} person(s): {report.kept} kept their "
        f"id, {report.removed} removed"
    )


@people.command("similar")
@click.argument("target")
@click.argument("face", type=click.IntRange(0, None))
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per face and line.")
@_friendly_errors
def people_similar(target: str, face: int, limit: int, as_json: bool) -> None:
    """The faces most like face number FACE (from 0) of TARGET (an image id or
    s3://bucket/key), nearest first; the same person is under 0.6."""
    import json

    found = _people().similar(_image_id_of(target), face, limit)
    for n in found:
        if as_json:
            line = {
                "image_id": n.image_id,
                "face": n.face,
                "person_id": n.person_id,
                "distance": round(n.distance, 4),
            }
            click.echo(printable_json(json.dumps(line)))
        else:
            click.echo(f"{n.image_id} face {n.face}  person {n.person_id}  {n.distance:.3f}")


@main.group()
def models() -> None:
    """The local backend's model files."""


@models.command("build")
@_friendly_errors
def models_build() -> None:
    """Derive the local models (the labels, object, 8-bit text detector, face expression and
    face embedding ONNX files) now, so no worker pays later."""
    from rudolph.backends.local import LocalAnalyzer

    started = time.perf_counter()
    analyzer = LocalAnalyzer(get_settings())
    analyzer.load(FEATURES)
    # Converted whatever RUDOLPH_PEOPLE says (converting reads no face), so turning it on later
    # costs no worker a conversion.
    _ = analyzer.embedder
    click.echo(
        f"local models ready in {time.perf_counter() - started:.1f} s ({get_settings().model_dir})"
    )


@main.group()
def metrics() -> None:
    """Fleet metrics for autoscalers that cannot read Redis (CloudWatch)."""


@metrics.command("publish")
@click.option(
    "--interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds between two publications.",
)
@click.option(
    "--fleet",
    default="rudolph",
    show_default=True,
    help="The Fleet dimension (e.g. the stack's name), so fleets in one account never mix.",
)
@click.option("--namespace", default="Rudolph", show_default=True, help="CloudWatch namespace.")
@click.option("--once", is_flag=True, help="Publish once and exit (1 when it failed).")
@_friendly_errors
def metrics_publish(interval: float, fleet: str, namespace: str, once: bool) -> None:
    """Publish each Celery queue's depth to CloudWatch (metric QueueDepth), every interval.

    A broker or CloudWatch that fails is logged and tried again at the next interval; SIGTERM
    or Ctrl-C stops it after the publication in hand.
    """
    import signal

    from rudolph.logs import configure
    from rudolph.metrics import DepthPublisher
    from workers import app

    configure()
    publisher = DepthPublisher(get_settings(), app, fleet=fleet, namespace=namespace)
    if once:
        sys.exit(0 if publisher.publish_once().ok else 1)
    stop: list[int] = []

    def request_stop(signum: int, frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    publisher.run(interval, stopping=lambda: bool(stop))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
def status(as_json: bool) -> None:
    """Show the fleet: Celery queues (depth, consumers), SQS, records by status, the index."""
    import json

    from rudolph import operations
    from workers import app

    report = operations.status(get_settings(), app)
    if as_json:
        click.echo(json.dumps(report.as_json()))
        return
    grid = table("queue", "waiting", "in flight", "consumers")
    for queue in report.celery:
        who = ", ".join(queue.consumers) or ("-" if report.workers_answered else "? (no worker)")
        grid.add_row(queue.name, str(queue.depth), "", cell(who))
    for sqs in (report.events, report.dead_letters):
        grid.add_row(sqs.name, str(sqs.visible), str(sqs.in_flight), "")
    out().print(grid)
    records = ", ".join(f"{count} {name}" for name, count in report.records.items())
    agrees = "agrees" if report.index_agrees else "DISAGREES"
    click.echo(f"records    {records}")
    per_bucket = ", ".join(f"{n} in {name}" for name, n in report.records_by_bucket.items())
    click.echo(f"buckets    {'; '.join(report.buckets)} ({per_bucket})")
    click.echo(
        f"index      {report.documents} document(s), {agrees} with "
        f"{report.indexed_records} done+partial+failed record(s); {report.search_engine}"
    )


def _control_queue(queue: str, resuming: bool) -> None:
    from rudolph import operations
    from workers import app

    said = operations.resume(queue, app) if resuming else operations.pause(queue, app)
    if not said:
        error("no worker answered: is any running?")
        sys.exit(1)
    for worker, answer in said.items():
        click.echo(printable(f"{worker}: {answer}"))
    verb = "consume" if resuming else "stopped consuming"
    click.echo(f"{len(said)} worker(s) {verb} {queue}")


@main.command()
@click.argument("queue", type=click.Choice(QUEUES))
@_friendly_errors
def pause(queue: str) -> None:
    """Stop every running worker consuming QUEUE (the workers keep running).

    Tasks wait in the queue until `rudolph resume QUEUE`. A worker started later still
    consumes QUEUE (its -Q option decides), paused or not.
    """
    _control_queue(queue, resuming=False)


@main.command()
@click.argument("queue", type=click.Choice(QUEUES))
@_friendly_errors
def resume(queue: str) -> None:
    """Make every running worker consume QUEUE again (after `rudolph pause QUEUE`)."""
    _control_queue(queue, resuming=True)


@main.command()
@click.argument(
    "queue",
    type=click.Choice([*QUEUES, *SQS_QUEUES]),
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_friendly_errors
def purge(queue: str, yes: bool) -> None:
    """Delete every waiting message of a Celery QUEUE, or of the SQS `events` or
    `dead-letters` queue. Tasks a worker already holds are not affected."""
    from rudolph import operations
    from workers import app

    settings = get_settings()
    if not yes:
        waiting = operations.queue_size(settings, queue, app)
        click.confirm(f"delete about {waiting} message(s) from {queue}?", abort=True)
    removed = operations.purge(settings, queue, app)
    click.echo(f"{removed} message(s) removed from {queue}")


@main.command()
@click.argument("url", metavar="[s3://BUCKET[/PREFIX]]", required=False)
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
@click.option(
    "--all",
    "--force",
    "force",
    is_flag=True,
    help="Re-run every feature of every image, even analysed at the same etag (a new model "
    "version); --force is the same flag.",
)
@click.option(
    "--missing",
    type=click.Choice(FEATURES),
    help="Re-run only this feature, only where a record lacks it or has it failed; the "
    "record keeps its other features.",
)
@click.option(
    "--inventory",
    metavar="s3://BUCKET/PATH/manifest.json",
    help="Read this S3 Inventory report (CSV) instead of listing the bucket.",
)
@click.option("--suffix", "suffixes", multiple=True, help="Only keys ending so (repeatable).")
@click.option("--modified-since", help="Only objects modified since this ISO date/time (UTC).")
@click.option("--max-size", type=click.IntRange(0), help="Skip objects over BYTES.")
@click.option("--max-queued", default=1000, show_default=True, type=click.IntRange(0))
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Objects per second.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint file.")
@click.option("--resume", is_flag=True, help="Start after the checkpoint's last key.")
@click.option("--page-size", default=1000, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--batch",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Objects per backfill batch task (a worker claims and publishes them).",
)
@_friendly_errors
@click.pass_context
def backfill(
    ctx: click.Context,
    url: str | None,
    dry_run: bool,
    force: bool,
    missing: str | None,
    inventory: str | None,
    suffixes: tuple[str, ...],
    modified_since: str | None,
    max_size: int | None,
    max_queued: int,
    rate: float | None,
    checkpoint: str | None,
    resume: bool,
    page_size: int,
    batch: int,
) -> None:
    """Send the images already in s3://BUCKET[/PREFIX] through the pipeline.

    Without a URL, every entry of RUDOLPH_BUCKETS (or RUDOLPH_BUCKET) in turn. Skips what
    RUDOLPH_BUCKETS leaves out (its prefixes and suffixes), non-images, objects refused at the
    door (recorded as failed) and images already analysed at the same etag (--all re-runs
    them; --missing FEATURE re-runs one feature). Waits while the Celery queues hold over
    --max-queued messages. Ctrl-C (or a crash) keeps a checkpoint; `--resume` continues after
    it without sending anything twice.
    """
    if url is None:
        watched = get_settings().buckets
        if len(watched) > 1 and (checkpoint or inventory):
            raise click.BadParameter(
                "--checkpoint and --inventory name one bucket: give its s3:// URL too",
                param_hint="URL",
            )
        for entry in watched:
            target = f"s3://{entry.name}/{entry.prefix}"
            if len(watched) > 1:
                click.echo(f"backfill  {target}")
            ctx.invoke(backfill, **{**ctx.params, "url": target})
        return
    from datetime import UTC, datetime
    from pathlib import Path

    from producer.backfill import Backfill, Options, default_checkpoint, parse_s3_url
    from producer.progress import Display, celery_outcomes
    from rudolph.buckets import describe, names

    try:
        bucket, prefix = parse_s3_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    settings = get_settings()
    if bucket not in names(settings.buckets):
        raise click.BadParameter(
            f"s3://{bucket} is not watched ({settings.buckets_setting}: "
            f"{describe(settings.buckets)}): add it to RUDOLPH_BUCKETS first, or the "
            "listener would skip its events",
            param_hint="URL",
        )
    since = None
    if modified_since:
        try:
            since = datetime.fromisoformat(modified_since.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(
                f"{modified_since!r} is not an ISO date", param_hint="--modified-since"
            ) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    wanted = tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)
    path = Path(checkpoint) if checkpoint else default_checkpoint(bucket, prefix)
    options = Options(
        bucket=bucket,
        prefix=prefix,
        suffixes=wanted,
        modified_since=since,
        max_size=max_size,
        force=force,
        dry_run=dry_run,
        max_queued=max_queued,
        rate=rate,
        checkpoint=path,
        resume=resume,
        page_size=page_size,
        batch=batch,
        missing=cast(Feature | None, missing),  # click.Choice checked it
        inventory=inventory,
    )
    import signal

    from workers import app

    verb = "would enqueue" if dry_run else "enqueued"
    display = Display(verb)
    outcomes = None if dry_run else celery_outcomes(app)
    job = Backfill(settings, options, progress=display, outcomes=outcomes)

    def stop(signum: int, frame: object) -> None:
        # First Ctrl-C: stop after the object in hand (never between enqueue and checkpoint).
        if job.stopping.is_set():
            raise KeyboardInterrupt
        job.stopping.set()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        report = job.run()
    except KeyboardInterrupt:
        report = job.report
        err.print(
            f"interrupted after {report.enqueued} enqueued; checkpoint {path} "
            f"(last key {report.last_key!r}); continue with: rudolph backfill {url} --resume"
            + (f" --checkpoint {path}" if checkpoint else ""),
            highlight=False,
            markup=False,
        )
        sys.exit(130)
    finally:
        display.close()
        signal.signal(signal.SIGINT, previous)
    click.echo(f"listed    {report.listed}")
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
    click.echo(f"skipped   {sum(report.skipped.values())}" + (f" ({reasons})" if reasons else ""))
    click.echo(f"{verb:<9} {report.enqueued}")
    click.echo(f"seconds   {report.seconds:.1f}")
    click.echo(f"rate      {report.rate:.0f}/s")
    if outcomes is not None:
        click.echo(f"finished  {report.done} done, {report.failed} failed (the rest still runs)")
