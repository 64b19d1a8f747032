"""Client for the `gkexec serve` HTTP API, standard library only.

`gkexec serve` runs as a sidecar in the agent's Pod; this module calls it on loopback and turns its
answers into plain Python objects. It does not import ADK: `gkexec_code_executor.py` adapts it to
ADK's BaseCodeExecutor, and anything else (LangChain, a plain script) can use it directly::

    from gkexec_client import GkexecClient
    result = GkexecClient().execute("print(6 * 7)")
    print(result.stdout, result.exit_code)

or, to keep the interpreter's state (variables, imports, files) from one execution to the next::

    client = GkexecClient()
    sid = client.open_session()["session_id"]
    client.execute_in_session(sid, "x = 6 * 7")
    print(client.execute_in_session(sid, "print(x)").stdout)   # 42
    client.close_session(sid)

or, in another language the server runs (GET /v1/config's languages: python, bash, javascript;
the sandbox image must have bash or node)::

    GkexecClient().execute("echo $((6 * 7))", language="bash")
    sid = client.open_session(language="javascript")["session_id"]   # a session is in one language

or, to see the output while the code runs::

    with GkexecClient().execute_stream("for i in range(3): print(i, flush=True)") as run:
        for chunk in run:
            print(chunk.text, end="")
    print(run.result.exit_code)

What the code did is a result (non-zero exit, timeout, OOM kill); only failures to run it raise
GkexecError. See docs/integrations.md for the API.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import http.client
import json
import mimetypes
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterator, Mapping, Optional

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where `gkexec serve` listens by default."""

ENV_URL = "GKEXEC_URL"
ENV_TOKEN = "GKEXEC_SERVE_TOKEN"
ENV_TOKEN_FILE = "GKEXEC_TOKEN_FILE"

NDJSON = "application/x-ndjson"
"""The media type of a streamed execution (Accept header of POST /v1/executions)."""

# Answers that are worth repeating after Retry-After: the concurrency bound, 503s the server
# marks retryable (quota, API server, a sandbox that failed) and a session another process is
# executing in (409 session_busy; execution_id_in_use is a 409 too, but not retryable).
_RETRY_STATUSES = (409, 429, 503)
_MAX_RETRY_DELAY = 30.0


class GkexecError(Exception):
    """The server did not run the code, or the code could not finish for reasons of its own.

    Attributes mirror the API's error object: status (HTTP, 0 when the server was unreachable),
    code (e.g. "forbidden", "busy", "invalid_request"), message, retryable, and execution_id and
    result (the partial result as a dict) when the server got that far.
    """

    def __init__(self, status: int, code: str, message: str, retryable: bool = False,
                 execution_id: Optional[str] = None, result: Optional[dict] = None,
                 retry_after: Optional[float] = None):
        super().__init__(f"gkexec serve: {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.execution_id = execution_id
        self.result = result
        self.retry_after = retry_after

    @property
    def model_actionable(self) -> bool:
        """True when changing the request can help: invalid or too large input."""
        return self.code in ("invalid_request", "request_too_large", "invalid_json")


@dataclasses.dataclass
class OutputFile:
    """A file the code wrote under /workspace/output."""

    path: str
    content: bytes
    size: int
    truncated: bool = False

    @property
    def mime_type(self) -> str:
        return mimetypes.guess_type(self.path)[0] or "application/octet-stream"


@dataclasses.dataclass
class ExecutionResult:
    """What one execution produced: the server's result JSON, decoded."""

    execution_id: str
    exit_code: int
    outcome: str  # success, error (non-zero exit), timeout, oom
    stdout: str
    stderr: str
    stdout_bytes: bytes
    stderr_bytes: bytes
    timed_out: bool = False
    oom_killed: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files_truncated: bool = False
    files: list[OutputFile] = dataclasses.field(default_factory=list)
    code_seconds: float = 0.0
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    raw: dict = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ExecutionResult":
        def exact(text_key: str) -> bytes:
            # The base64 twin is present only when the bytes are not UTF-8; then it is the exact one.
            twin = d.get(text_key + "_base64")
            return base64.b64decode(twin) if twin else d.get(text_key, "").encode("utf-8")

        return cls(
            execution_id=d.get("execution_id", ""),
            exit_code=int(d.get("exit_code", 0)),
            outcome=d.get("outcome", ""),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            stdout_bytes=exact("stdout"),
            stderr_bytes=exact("stderr"),
            timed_out=bool(d.get("timed_out")),
            oom_killed=bool(d.get("oom_killed")),
            stdout_truncated=bool(d.get("stdout_truncated")),
            stderr_truncated=bool(d.get("stderr_truncated")),
            files_truncated=bool(d.get("files_truncated")),
            files=[OutputFile(path=f["path"], content=base64.b64decode(f.get("content_base64", "")),
                              size=int(f.get("size", 0)), truncated=bool(f.get("truncated")))
                   for f in d.get("files") or []],
            code_seconds=float(d.get("code_seconds", 0.0)),
            phase_seconds=dict(d.get("phase_seconds") or {}),
            raw=dict(d),
        )


@dataclasses.dataclass(frozen=True)
class OutputChunk:
    """A piece of the code's stdout or stderr, as it was produced (ExecutionStream yields them).

    data is the exact bytes; the chunks of a stream add up to the result's stdout_bytes or
    stderr_bytes. text is whole characters: a character split between two chunks comes whole with
    the second. Output that is not UTF-8 is decoded with U+FFFD replacements in text only.
    """

    stream: str  # "stdout" or "stderr"
    data: bytes
    text: str


class ExecutionStream:
    """An execution whose output streams (GkexecClient.execute_stream): iterate it for OutputChunks
    as the code produces them; once the iteration is over, result is the ExecutionResult.

    A failure after the output began raises GkexecError from the iteration, with the partial
    result as its result; code "incomplete_stream" (status 0) when the answer broke off before its
    last line. Use it as a context manager, or call close(), to hang up early: the server then
    cancels the execution and deletes its sandbox.
    """

    def __init__(self, resp, url: str):
        self._resp = resp
        self._url = url
        self._chunks = self._read()
        self.execution_id: Optional[str] = resp.headers.get("X-Gkexec-Execution-Id")
        self.result: Optional[ExecutionResult] = None
        """The result, once the iteration has ended; None before."""

    def __iter__(self) -> "ExecutionStream":
        return self

    def __next__(self) -> OutputChunk:
        return next(self._chunks)

    def __enter__(self) -> "ExecutionStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._chunks.close()
        self._resp.close()

    def _read(self) -> Iterator[OutputChunk]:
        try:
            if self._resp.headers.get_content_type() != NDJSON:
                # A server that does not stream answers with the plain result: each stream whole.
                self.result = ExecutionResult.from_json(json.loads(self._resp.read().decode("utf-8")))
                for name, data in (("stdout", self.result.stdout_bytes), ("stderr", self.result.stderr_bytes)):
                    if data:
                        yield OutputChunk(name, data, data.decode("utf-8", "replace"))
                return
            while True:
                raw = self._resp.readline()
                if not raw:
                    raise GkexecError(0, "incomplete_stream", f"POST {self._url}: the answer ended before its result line",
                                      execution_id=self.execution_id)
                if not raw.strip():
                    continue
                line = json.loads(raw.decode("utf-8"))
                kind = line.get("type")
                if kind == "output" and line.get("stream") in ("stdout", "stderr"):
                    yield _chunk_from(line)
                elif kind == "result":
                    self.result = ExecutionResult.from_json(line.get("result") or {})
                    return
                elif kind == "error":
                    err = line.get("error") or {}
                    raise GkexecError(int(line.get("status", 0)), err.get("code", "internal"), err.get("message", ""),
                                      bool(err.get("retryable")), line.get("execution_id"), line.get("result"))
                # Lines of other types are for newer clients.
        except (OSError, http.client.HTTPException, ValueError) as e:  # the connection broke or timed out; not JSON
            raise GkexecError(0, "incomplete_stream", f"POST {self._url}: reading the answer: {e}",
                              execution_id=self.execution_id) from None
        finally:
            self._resp.close()


def _chunk_from(line: Mapping[str, Any]) -> OutputChunk:
    # data is the text when the chunk is UTF-8; otherwise data_base64 holds the exact bytes.
    if "data_base64" in line:
        data = base64.b64decode(line["data_base64"])
        return OutputChunk(line["stream"], data, data.decode("utf-8", "replace"))
    text = line.get("data", "")
    return OutputChunk(line["stream"], text.encode("utf-8"), text)


class GkexecClient:
    """Calls `gkexec serve`.

    Args:
      base_url: the server, default $GKEXEC_URL or http://127.0.0.1:8080.
      token: bearer token, default $GKEXEC_SERVE_TOKEN, else the content of token_file
        (default $GKEXEC_TOKEN_FILE).
      timeout_seconds: how long to wait for one answer; default: the server's start and run
        timeouts plus a minute, read from GET /v1/config on first use.
      max_retries: how often to repeat a request the server answered 429 or retryable 503,
        after its Retry-After delay.
    """

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None,
                 token_file: Optional[str] = None, timeout_seconds: Optional[float] = None,
                 max_retries: int = 3):
        self.base_url = (base_url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        token_file = token_file or os.environ.get(ENV_TOKEN_FILE)
        if token is None and os.environ.get(ENV_TOKEN):
            token = os.environ[ENV_TOKEN].strip()
        if token is None and token_file:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        self.token = token or None
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self._config: Optional[dict] = None
        # The sidecar is on loopback: never send its traffic (or the token) through an
        # HTTP(S)_PROXY from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def config(self) -> dict:
        """The sandbox configuration every execution gets (GET /v1/config), cached."""
        if self._config is None:
            self._config = self._request("GET", "/v1/config", None, timeout=30)
        return self._config

    def execute(self, code: str, files: Optional[Mapping[str, bytes]] = None,
                execution_id: Optional[str] = None, language: Optional[str] = None) -> ExecutionResult:
        """Runs code in a new sandbox (POST /v1/executions).

        files maps relative paths to contents; the code finds them in its working directory.
        language is the code's: "python" (None is the server's default, Python), "bash" or
        "javascript" (config()["languages"]); one the server does not run, or whose interpreter
        the sandbox image lacks, is a 400 invalid_request.
        Returns the result whatever the code did; raises GkexecError when it could not run.
        """
        data, timeout = self._execution(code, files, execution_id, language)
        return ExecutionResult.from_json(self._retrying(lambda: self._request("POST", "/v1/executions", data, timeout=timeout)))

    def execute_stream(self, code: str, files: Optional[Mapping[str, bytes]] = None,
                       execution_id: Optional[str] = None, language: Optional[str] = None) -> ExecutionStream:
        """Runs code like execute, streaming its output (Accept: application/x-ndjson).

        Returns once the output begins (or the code is over): iterate the ExecutionStream for
        OutputChunks, then read its result. Failures before any output raise GkexecError here,
        after the same retries as execute; later ones raise from the iteration.
        """
        data, timeout = self._execution(code, files, execution_id, language)
        resp = self._retrying(lambda: self._open("POST", "/v1/executions", data, timeout=timeout, accept=NDJSON))
        return ExecutionStream(resp, self.base_url + "/v1/executions")

    def open_session(self, session_id: Optional[str] = None, idle_timeout_seconds: Optional[float] = None,
                     max_lifetime_seconds: Optional[float] = None, language: Optional[str] = None) -> dict:
        """Opens a session (POST /v1/sessions): one interpreter in one sandbox whose variables,
        imports and files persist across execute_in_session calls until close_session, its idle
        timeout or its lifetime ends it. None means the server's default (also its ceiling).

        language: the session's interpreter's, "python" (None is the server's default, Python), "bash" or
        "javascript": a session runs one language. A sandbox image without its interpreter refuses
        the session (400 invalid_request, naming the missing program).

        session_id: a DNS label of at most 38 characters; None lets the server choose a random one.
        An ID is a bearer capability: whoever knows it and holds the server's token can run code in
        the session and read what it holds, so give one that cannot be guessed (or none).

        Returns {"session_id", "sandbox", "pod_name"}. An ID already open is a 400 invalid_request.
        """
        body: dict[str, Any] = {}
        if session_id:
            body["session_id"] = session_id
        if idle_timeout_seconds is not None:
            body["idle_timeout_seconds"] = idle_timeout_seconds
        if max_lifetime_seconds is not None:
            body["max_lifetime_seconds"] = max_lifetime_seconds
        if language:
            body["language"] = language
        cfg_timeout = self.timeout_seconds
        if cfg_timeout is None:
            cfg_timeout = float(self.config().get("start_timeout_seconds", 120)) + 60
        data = json.dumps(body).encode("utf-8")
        return self._retrying(lambda: self._request("POST", "/v1/sessions", data, timeout=cfg_timeout))

    def execute_in_session(self, session_id: str, code: str, files: Optional[Mapping[str, bytes]] = None,
                           execution_id: Optional[str] = None, language: Optional[str] = None) -> ExecutionResult:
        """Runs code in the session's interpreter (POST /v1/sessions/{id}/executions), as execute.

        language None means the session's; another than the session's is a 400 invalid_request
        (nothing runs, and the session goes on).

        Raises GkexecError 404 session_not_found (never opened, closed or expired), 410
        session_ended (it is over and its sandbox deleted; .result is the Result of the execution
        that ended it, when one did) and, after the retries, 409 session_busy.
        """
        data, timeout = self._execution(code, files, execution_id, language)
        path = _session_path(session_id) + "/executions"
        return ExecutionResult.from_json(self._retrying(lambda: self._request("POST", path, data, timeout=timeout)))

    def execute_in_session_stream(self, session_id: str, code: str, files: Optional[Mapping[str, bytes]] = None,
                                  execution_id: Optional[str] = None, language: Optional[str] = None) -> ExecutionStream:
        """execute_in_session, streaming its output as execute_stream does."""
        data, timeout = self._execution(code, files, execution_id, language)
        path = _session_path(session_id) + "/executions"
        resp = self._retrying(lambda: self._open("POST", path, data, timeout=timeout, accept=NDJSON))
        return ExecutionStream(resp, self.base_url + path)

    def close_session(self, session_id: str) -> None:
        """Ends the session and deletes its sandbox (DELETE /v1/sessions/{id}); raises GkexecError
        404 session_not_found when there is no such session."""
        with self._open("DELETE", _session_path(session_id), None, timeout=60):
            pass

    def _execution(self, code: str, files: Optional[Mapping[str, bytes]], execution_id: Optional[str],
                   language: Optional[str]) -> tuple[bytes, float]:
        """The body of POST /v1/executions and how long to wait for its answer."""
        body: dict[str, Any] = {"code": code}
        if language:
            body["language"] = language
        if files:
            body["files"] = {name: base64.b64encode(bytes(data)).decode("ascii") for name, data in files.items()}
        if execution_id:
            body["execution_id"] = execution_id
        # ensure_ascii=False: non-ASCII code travels as UTF-8, not as 6-byte \\u escapes, so a
        # request that fits the ConfigMap also fits the server's body limit.
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        timeout = self.timeout_seconds
        if timeout is None:
            cfg = self.config()
            timeout = float(cfg.get("start_timeout_seconds", 120)) + float(cfg.get("timeout_seconds", 300)) + 60
        return data, timeout

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """call(), repeated after Retry-After while the server answers 429 or a retryable 503."""
        attempt = 0
        while True:
            try:
                return call()
            except GkexecError as e:
                if e.status not in _RETRY_STATUSES or not (e.retryable or e.status == 429) or attempt >= self.max_retries:
                    raise
                attempt += 1
                time.sleep(min(e.retry_after or 1.0, _MAX_RETRY_DELAY))

    def ready(self) -> tuple[bool, dict]:
        """GET /readyz: whether the server can reach the API server with the RBAC it needs."""
        try:
            return True, self._request("GET", "/readyz", None, timeout=30)
        except GkexecError as e:
            return False, e.result or {"reason": e.message}

    def _request(self, method: str, path: str, body: Optional[bytes], timeout: float) -> dict:
        with self._open(method, path, body, timeout) as resp:
            try:
                return json.loads(resp.read().decode("utf-8"))
            except OSError as e:
                raise GkexecError(0, "unreachable", f"{method} {self.base_url}{path}: reading the answer: {e}",
                                  retryable=True) from None

    def _open(self, method: str, path: str, body: Optional[bytes], timeout: float, accept: str = "application/json"):
        """The response to a request that the server answered 200; GkexecError otherwise."""
        req = urllib.request.Request(self.base_url + path, data=body, method=method)
        req.add_header("Accept", accept)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            return self._opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise _error_from(e) from None
        except (urllib.error.URLError, OSError) as e:
            raise GkexecError(0, "unreachable", f"{method} {self.base_url}{path}: is gkexec serve running there? {e}",
                              retryable=True) from None


def _session_path(session_id: str) -> str:
    return "/v1/sessions/" + urllib.parse.quote(session_id, safe="")


def _error_from(e: urllib.error.HTTPError) -> GkexecError:
    raw = e.read()
    retry_after = None
    if e.headers.get("Retry-After", "").isdigit():
        retry_after = float(e.headers["Retry-After"])
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError:
        return GkexecError(e.code, "internal", raw.decode("utf-8", "replace").strip() or str(e), retry_after=retry_after)
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):  # /readyz answers 503 with its own body
        return GkexecError(e.code, "not_ready", str(doc.get("reason", doc)), result=doc, retry_after=retry_after)
    return GkexecError(e.code, err.get("code", "internal"), err.get("message", ""), bool(err.get("retryable")),
                       doc.get("execution_id"), doc.get("result"), retry_after)


# --- Mapping onto ADK's CodeExecutionResult, kept here so that it is testable without ADK. ---

def adk_fields(result: ExecutionResult) -> dict:
    """The keyword arguments of ADK's CodeExecutionResult for this result.

    ADK treats any stderr as a failed execution (it feeds stderr back to the model and counts an
    error), so everything that makes the run a failure is said on stderr: a non-zero exit with no
    output of its own, a timeout, an OOM kill. Truncation is not a failure and is noted on stdout.
    Output files are base64 strings, as ADK's File expects, with a MIME type from the name.
    """
    stdout, stderr = result.stdout, result.stderr
    notes = []
    if result.timed_out:
        notes.append("gkexec: the code ran past the time limit and was killed; the output above is what it printed until then")
    elif result.oom_killed:
        notes.append("gkexec: the code ran out of memory and was killed")
    elif result.exit_code != 0 and not stderr.strip():
        notes.append(f"gkexec: the code exited with status {result.exit_code}")
    if notes:
        stderr = (stderr + ("" if not stderr or stderr.endswith("\n") else "\n") + "\n".join(notes) + "\n")
    if result.stdout_truncated:
        stdout += "\n[gkexec: stdout truncated at the sandbox's size limit]\n"
    if result.files_truncated:
        stdout += "\n[gkexec: output files truncated at the sandbox's size limit]\n"
    files = [{"name": f.path, "content": base64.b64encode(f.content).decode("ascii"), "mime_type": f.mime_type}
             for f in result.files]
    return {"stdout": stdout, "stderr": stderr, "output_files": files}


def input_file_bytes(content: str | bytes) -> bytes:
    """The bytes of an ADK input File: bytes as they are; a str is base64 (ADK's convention for
    File.content), or, if it is not valid base64, the text itself in UTF-8."""
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return content.encode("utf-8")
