"""What the tests share: the modules under test on sys.path, and the server they run against.

The server-backed tests need a real `gkexec serve` on loopback, started by the Go test that drives
them (test/agent, `go test -tags integration ./test/...`), which passes:

  GKEXEC_TEST_URL              the server; it runs with --max-concurrent 1
  GKEXEC_TEST_TOKEN            its bearer token
  GKEXEC_TEST_NAMESPACE        its --namespace
  GKEXEC_TEST_TIMEOUT_SECONDS  its --timeout

Without them those tests are skipped (the Go driver fails on any skip).

StubServer answers with scripted bytes instead, for what a real server cannot be made to do on
cue (a stream that breaks off, an error line after output); it frames them as `gkexec serve` does.
"""

import base64
import http.server
import json
import os
import socket
import sys
import threading
import time
import unittest
from typing import Optional, Union

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # gkexec_client, gkexec_code_executor

try:
    import google.adk  # noqa: F401  (the real ADK, where it is installed)
except ImportError:
    sys.path.insert(0, os.path.join(HERE, "adk_stub"))

URL = os.environ.get("GKEXEC_TEST_URL", "")
TOKEN = os.environ.get("GKEXEC_TEST_TOKEN", "")
NAMESPACE = os.environ.get("GKEXEC_TEST_NAMESPACE", "")
TIMEOUT_SECONDS = float(os.environ.get("GKEXEC_TEST_TIMEOUT_SECONDS", "0") or 0)


def require_server(test: unittest.TestCase) -> None:
    if not URL:
        raise unittest.SkipTest("GKEXEC_TEST_URL is not set: run through `go test -tags integration ./test/agent`")


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- The streamed answer of POST /v1/executions, as server/server.go writes it (docs/integrations.md). ---

NDJSON = "application/x-ndjson"


def output_line(stream: str, data: bytes) -> bytes:
    """An output line: the chunk as text when it is UTF-8, else its exact bytes in data_base64."""
    try:
        line = {"type": "output", "stream": stream, "data": data.decode("utf-8")}
    except UnicodeDecodeError:
        line = {"type": "output", "stream": stream, "data_base64": base64.b64encode(data).decode("ascii")}
    return _line(line)


def result_line(result: dict) -> bytes:
    return _line({"type": "result", "result": result})


def error_line(status: int, code: str, message: str, retryable: bool, execution_id: str,
               result: Optional[dict] = None) -> bytes:
    line = {"type": "error", "status": status, "error": {"code": code, "message": message, "retryable": retryable},
            "execution_id": execution_id}
    if result is not None:
        line["result"] = result
    return _line(line)


def _line(obj: dict) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class Answer:
    """One scripted answer: a status, headers, and parts sent in order, each as one HTTP chunk
    (flushed, as the Go server flushes every line). A threading.Event part is waited on (at most
    wait_seconds) before the next part; waited records whether each one was set in time. The part
    UNTIL_HUNG_UP sends output lines until the client hangs up (at most wait_seconds), which sets
    hung_up. complete=False drops the connection without the last, empty chunk."""

    def __init__(self, status: int = 200, content_type: str = NDJSON, parts: tuple = (),
                 headers: Optional[dict] = None, wait_seconds: float = 30, complete: bool = True):
        self.status, self.content_type, self.parts = status, content_type, parts
        self.headers = dict(headers or {})
        self.wait_seconds = wait_seconds
        self.complete = complete
        self.waited: list[bool] = []
        self.hung_up = False


UNTIL_HUNG_UP = object()


class StubServer:
    """A loopback HTTP/1.1 server that answers each POST or DELETE with the next scripted Answer and
    records each request's headers and body (requests) and method and path (paths). Use it as a context manager."""

    def __init__(self, *answers: Answer):
        self.answers = list(answers)
        self.requests: list[tuple[dict, bytes]] = []
        self.paths: list[str] = []  # "METHOD /path" of each request, in order
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                stub.paths.append(f"{self.command} {self.path}")
                answer = stub.answers.pop(0)
                self.send_response(answer.status)
                if answer.status == 204:  # no body, as the server answers DELETE /v1/sessions/{id}
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    for part in answer.parts:
                        if isinstance(part, threading.Event):
                            answer.waited.append(part.wait(answer.wait_seconds))
                        elif part is UNTIL_HUNG_UP:
                            deadline = time.monotonic() + answer.wait_seconds
                            while time.monotonic() < deadline:
                                self.send_chunk(output_line("stdout", b"."))
                        else:
                            self.send_chunk(part)
                    if answer.complete:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    answer.hung_up = True

            do_DELETE = do_GET = do_POST

            def send_chunk(self, part: bytes):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on exit, so that what they recorded is complete by then.
        self._server.daemon_threads = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def json_answer(status: int, doc: Union[dict, list], headers: Optional[dict] = None) -> Answer:
    """A plain JSON answer, as the server gives errors found before any output, and results
    when not asked to stream."""
    return Answer(status, "application/json", (json.dumps(doc).encode("utf-8") + b"\n",), headers)
