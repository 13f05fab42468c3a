"""A Rekognition stand-in for tests whose workers run in other processes, where a Stubber
cannot reach: a small HTTP server on 127.0.0.1 speaking Rekognition's JSON protocol.

Operations with a canned answer are answered from it, after checking it against botocore's
model of the operation's output (as Stubber does); everything else is forwarded to `upstream`
(moto's server, which implements DetectLabels and DetectText but not DetectFaces).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

_MODEL = botocore.session.get_session().get_service_model("rekognition")


def validated(operation: str, response: dict[str, Any]) -> dict[str, Any]:
    report = ParamValidator().validate(response, _MODEL.operation_model(operation).output_shape)
    if report.has_errors():
        raise ValueError(f"not a valid {operation} response: {report.generate_report()}")
    return response


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self.server.calls.append(operation)
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


@contextmanager
def rekognition_standin(upstream: str, answers: dict[str, dict[str, Any]]) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.upstream = upstream
    server.answers = {op: validated(op, answer) for op, answer in answers.items()}
    server.calls = []
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
