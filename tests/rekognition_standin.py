"""A Rekognition stand-in for tests whose workers run in other processes, where a Stubber
cannot reach: a small HTTP server on 127.0.0.1 speaking Rekognition's JSON protocol.

Operations with a canned answer are answered from it, after checking it against botocore's
model of the operation's output (as Stubber does); everything else is forwarded to `upstream`
(moto's server, which implements DetectLabels and DetectText but not DetectFaces).

With `quota`, it also throttles like Rekognition's per-account TPS quota: an operation that
already accepted `quota` requests in the last second (a sliding window) is answered HTTP 400
ThrottlingException; `accepted` and `throttled` count the answers per operation.
`quota_answers` gives small valid answers for all three operations, so such a stand-in needs
no upstream. `throttling_standin` runs one in a process of its own: the arrival times it
judges by are then the requests' own, not delayed by whatever else the test process does
(in-process, a busy main thread can hold a request back for 100+ ms and bunch requests up).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time
import urllib.request
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

_MODEL = botocore.session.get_session().get_service_model("rekognition")


def validated(operation: str, response: dict[str, Any]) -> dict[str, Any]:
    report = ParamValidator().validate(response, _MODEL.operation_model(operation).output_shape)
    if report.has_errors():
        raise ValueError(f"not a valid {operation} response: {report.generate_report()}")
    return response


_FACES = (
    Path(__file__).resolve().parent / "fixtures/rekognition/detect_faces_three_people_2018.json"
)
THROTTLED = {"__type": "ThrottlingException", "message": "Rate exceeded"}


def quota_answers() -> dict[str, dict[str, Any]]:
    """Small valid DetectLabels and DetectText answers, and the recorded DetectFaces one."""
    box = {"Width": 0.2, "Height": 0.07, "Left": 0.41, "Top": 0.46}
    return {
        "DetectLabels": {
            "Labels": [
                {"Name": "Person", "Confidence": 98.2, "Instances": [], "Parents": []},
                {"Name": "Astronaut", "Confidence": 91.5, "Instances": [], "Parents": []},
            ],
            "LabelModelVersion": "3.0",
        },
        "DetectText": {
            "TextDetections": [
                {
                    "DetectedText": "NASA",
                    "Type": "LINE",
                    "Id": 0,
                    "Confidence": 97.0,
                    "Geometry": {"BoundingBox": box},
                },
                {
                    "DetectedText": "NASA",
                    "Type": "WORD",
                    "Id": 1,
                    "ParentId": 0,
                    "Confidence": 97.0,
                    "Geometry": {"BoundingBox": box},
                },
            ],
            "TextModelVersion": "3.0",
        },
        "DetectFaces": json.loads(_FACES.read_text()),
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path != "/_counts":
            self._reply(404, b"{}")
            return
        with self.server._lock:
            counts = {"accepted": self.server.accepted, "throttled": self.server.throttled}
            self._reply(200, json.dumps(counts).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self.server.calls.append(operation)
        if self.server.quota is not None and not self.server.admit(operation):
            self._reply(400, json.dumps(THROTTLED).encode())
            return
        if operation in self.server.answers:
            self._reply(200, json.dumps(self.server.answers[operation]).encode())
            return
        request = urllib.request.Request(
            self.server.upstream + self.path, data=body, headers=dict(self.headers), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self._reply(response.status, response.read())
        except urllib.error.HTTPError as error:
            self._reply(error.code, error.read())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    upstream: str
    answers: dict[str, dict[str, Any]]
    calls: list[str]
    quota: float | None
    accepted: Counter[str]
    throttled: Counter[str]
    _windows: defaultdict[str, deque[float]]
    _lock: threading.Lock

    def admit(self, operation: str) -> bool:
        """Count one request against `operation`'s quota: False when it is over."""
        with self._lock:
            now = time.monotonic()
            window = self._windows[operation]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if self.quota is not None and len(window) >= self.quota:
                self.throttled[operation] += 1
                return False
            window.append(now)
            self.accepted[operation] += 1
            return True


@contextmanager
def rekognition_standin(
    upstream: str, answers: dict[str, dict[str, Any]], quota: float | None = None
) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.upstream = upstream
    server.answers = {op: validated(op, answer) for op, answer in answers.items()}
    server.calls = []
    server.quota = quota
    server.accepted = Counter()
    server.throttled = Counter()
    server._windows = defaultdict(deque)
    server._lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def url(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


class Throttling:
    """A quota-mode stand-in in another process: its URL and its counts per operation."""

    def __init__(self, url: str) -> None:
        self.url = url

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """(accepted, throttled) requests per operation so far."""
        with urllib.request.urlopen(self.url + "/_counts", timeout=10) as response:
            counts = json.load(response)
        return Counter(counts["accepted"]), Counter(counts["throttled"])


def _serve(answers: dict[str, dict[str, Any]], quota: float, control: Connection) -> None:
    with rekognition_standin("", answers, quota) as server:
        control.send(url(server))
        with suppress(EOFError):
            control.recv()  # until told to stop, or the parent is gone


@contextmanager
def throttling_standin(
    quota: float, answers: dict[str, dict[str, Any]] | None = None
) -> Iterator[Throttling]:
    """A stand-in that throttles each operation above `quota` requests in any 1 s, answering
    from `answers` (default: quota_answers()), in a process of its own."""
    context = mp.get_context("spawn")
    control, child_end = context.Pipe()
    process = context.Process(
        target=_serve, args=(answers or quota_answers(), quota, child_end), daemon=True
    )
    process.start()
    try:
        if not control.poll(60):
            raise RuntimeError("the throttling stand-in did not start within 60 s")
        yield Throttling(control.recv())
    finally:
        with suppress(OSError):
            control.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
