"""GkexecCodeExecutor: ADK for Python's code executor backed by a `gkexec serve` sidecar.

The drop-in alternative to ADK's GkeCodeExecutor::

    from google.adk.agents import LlmAgent
    from gkexec_code_executor import GkexecCodeExecutor

    agent = LlmAgent(
        name="coder",
        model="gemini-2.5-flash",
        code_executor=GkexecCodeExecutor(namespace="agent-sandbox", timeout_seconds=300),
    )

GkeCodeExecutor creates the Jobs itself, in-process, with the agent's ServiceAccount. This one sends
the code to `gkexec serve` on loopback, so the agent needs no Kubernetes credentials, gets gkexec's
hardened sandbox, per-stream output, output files and cleanup on every path, and works the same from
any language.

The model's code is Python by default; language="bash" or "javascript" runs every execution in that
language instead (the sidecar's image must have bash or node), and the executor then takes the
model's code from ```bash / ```sh or ```javascript / ```js blocks (and ```tool_code), not ```python.

The ADK import is deliberately thin: only this module imports google.adk, and only the base class
and the two result types. The HTTP client and the mapping onto CodeExecutionResult are plain
standard-library Python in gkexec_client.py, tested against a real server without ADK installed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from typing import Any, Optional, Union

from google.adk.agents.invocation_context import InvocationContext
from google.adk.code_executors.base_code_executor import BaseCodeExecutor
from google.adk.code_executors.code_execution_utils import CodeExecutionInput, CodeExecutionResult, File

from gkexec_client import ExecutionResult, GkexecClient, GkexecError, adk_fields, input_file_bytes

log = logging.getLogger(__name__)

# The environment variable session_secret falls back to.
SESSION_SECRET_ENV = "GKEXEC_SESSION_SECRET"
# The shortest session secret accepted; 32 random bytes are recommended.
MIN_SESSION_SECRET_BYTES = 16
_SESSION_PREFIX = "adk-"
_SESSION_HEX = 32  # 128 bits: "adk-" and 32 hex digits, a DNS label of 36 characters

PYTHON = "python"
"""The default language, the sandbox's own interpreter's."""


def session_id_for(execution_id: str, secret: Union[str, bytes, None], language: str = PYTHON) -> str:
    """The gkexec session ID for an ADK execution ID: "adk-" and the first 32 hex digits of
    HMAC-SHA256(secret, execution_id as UTF-8), a DNS label of 36 characters; for a language
    other than Python, of HMAC-SHA256(secret, language + "\\x00" + execution_id), so that the
    stateful executors of two languages in one ADK session (which share its execution_id) have
    sessions of their own: a session runs one language.

    The same in every process that holds the same secret, so that replicas meet in one session;
    and not computable from the execution ID (the ADK session's ID) alone, because a session ID
    is a bearer capability: whoever knows it and holds the sidecar's token can run code in the
    session. secret: at least MIN_SESSION_SECRET_BYTES bytes (a str counts as UTF-8); ValueError
    if it is missing or shorter, and if execution_id holds a NUL, the separator (with one, a
    Python ID could be another language's).
    """
    key = _session_key(secret, "session_id_for", "")
    if "\x00" in execution_id:
        raise ValueError(f"session_id_for: the execution ID {execution_id!r} contains a NUL, the separator of the "
                         "session ID's derivation")
    message = execution_id if language == PYTHON else language + "\x00" + execution_id
    return _SESSION_PREFIX + hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()[:_SESSION_HEX]


def _session_key(secret: Union[str, bytes, None], who: str, where: str) -> bytes:
    """The secret as bytes, or ValueError saying what to give (where: how to give it); the
    message never holds the secret."""
    if not isinstance(secret, (str, bytes, bytearray, type(None))):
        raise TypeError(f"{who}: the session secret must be str or bytes, not {type(secret).__name__}")
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret or b"")
    if not key:
        raise ValueError(
            f"{who} needs a session secret{where}: the gkexec session IDs are "
            "derived from it, so that knowing an ADK session's ID is not enough to reach its interpreter. Give every "
            "replica of the agent the same random bytes, at least 16 (e.g. `head -c 32 /dev/urandom | base64`, kept "
            "in a Kubernetes Secret)")
    if len(key) < MIN_SESSION_SECRET_BYTES:
        raise ValueError(f"{who}: the session secret has {len(key)} bytes; at least {MIN_SESSION_SECRET_BYTES} are "
                         "required (32 random bytes recommended)")
    return key


# The fences ADK takes the model's code from (BaseCodeExecutor.code_block_delimiters), for a
# language other than Python: ADK's default takes ```python blocks, which are not code for bash
# or node. ```tool_code, ADK's own fence, stays first: ADK writes executed code back into the
# conversation in the first.
_CODE_BLOCK_DELIMITERS = {
    "bash": [("```tool_code\n", "\n```"), ("```bash\n", "\n```"), ("```sh\n", "\n```")],
    "javascript": [("```tool_code\n", "\n```"), ("```javascript\n", "\n```"), ("```js\n", "\n```")],
}

# GkeCodeExecutor's parameters that describe the sandbox, and the /v1/config field and the
# `gkexec serve` flag that set each. The sidecar applies its own flags to every execution; given
# here, they are checked against it, so that a mismatch fails loudly instead of being ignored.
_SANDBOX_PARAMETERS = {
    "namespace": ("namespace", "--namespace"),
    "image": ("image", "--image"),
    "timeout_seconds": ("timeout_seconds", "--timeout"),
    "cpu_request": ("cpu_request", "--cpu-request"),
    "cpu_requested": ("cpu_request", "--cpu-request"),
    "mem_request": ("memory_request", "--memory-request"),
    "mem_requested": ("memory_request", "--memory-request"),
    "cpu_limit": ("cpu_limit", "--cpu-limit"),
    "mem_limit": ("memory_limit", "--memory-limit"),
}


class GkexecCodeExecutor(BaseCodeExecutor):
    """Runs the model's code through a `gkexec serve` sidecar.

    Constructor parameters:
      base_url: the sidecar, default $GKEXEC_URL or http://127.0.0.1:8080.
      token / token_file: its bearer token, default $GKEXEC_SERVE_TOKEN / $GKEXEC_TOKEN_FILE.
      namespace, image, timeout_seconds, cpu_request, mem_request, cpu_limit, mem_limit: as in
        GkeCodeExecutor (cpu_requested and mem_requested, the spellings of ADK's docs, too). The
        sidecar's flags decide them; any given here must match, checked on first use.
      kubeconfig_path, kubeconfig_context: not supported: the credentials live in the sidecar.
      language: the language of the model's code, "python" (default), "bash" or "javascript": every
        execution (and, when stateful, every session) runs in it. Checked on first use against the
        sidecar's GET /v1/config languages. bash and node must be on the sandbox image's PATH; an
        image without them answers each execution with stderr naming the missing program. For
        another language than Python, code_block_delimiters default to that language's fences
        (```bash, ```sh; ```javascript, ```js) after ```tool_code, and optimize_data_file is
        refused (ADK's data file exploration is Python).
      max_retries: repeats of a request the sidecar answered 429 (busy) or retryable 503.
      errors_as_stderr: False (default) raises GkexecError when the sandbox cannot run the code
        (RBAC, API server, no node, image): the model cannot fix those. True reports them to the
        model as stderr, as GkeCodeExecutor does.
      stateful: False (default): every execution starts in a fresh sandbox. True: executions with
        the same CodeExecutionInput.execution_id (ADK sets it to the ADK session's ID when the
        executor is stateful) share one gkexec session, whose variables, imports and files persist;
        its ID is session_id_for(execution_id, session_secret). It is opened on first use (or resumed, if this or
        another process opened it before) and left open after; its idle timeout and lifetime
        (session_idle_timeout_seconds, session_max_lifetime_seconds, default the sidecar's) end
        it, or close_session does.
        If a session this executor used is found over (404/410 before the code ran: expired,
        closed, or its sandbox gone) a fresh one is opened and the code runs there; the lost state
        is logged as a warning and told to the model in stderr. If the code itself ended the
        session (a timeout it could not be interrupted from, os._exit, OOM), its result comes back
        with that note, and the next execution opens a fresh session: code is never run twice.
      session_secret: with stateful=True, required (else $GKEXEC_SESSION_SECRET): str or bytes, at
        least 16 bytes, the same in every replica. It keys the session IDs, since an ID is a
        bearer capability: whoever knows one and holds the sidecar's token can drive the session.
        Not a field: kept private, never logged, not in repr. A new secret means new session IDs:
        the next execution of each ADK session runs in a fresh session.

    Model-actionable outcomes are results, never exceptions: a non-zero exit, a timeout or an OOM
    kill comes back with stderr saying so; input the sandbox refuses (too large, a bad file name)
    comes back as stderr too.
    """

    base_url: Optional[str] = None
    token: Optional[str] = None
    token_file: Optional[str] = None
    namespace: Optional[str] = None
    image: Optional[str] = None
    timeout_seconds: Optional[int] = None
    cpu_request: Optional[str] = None
    cpu_requested: Optional[str] = None
    mem_request: Optional[str] = None
    mem_requested: Optional[str] = None
    cpu_limit: Optional[str] = None
    mem_limit: Optional[str] = None
    kubeconfig_path: Optional[str] = None
    kubeconfig_context: Optional[str] = None
    language: str = PYTHON
    max_retries: int = 3
    errors_as_stderr: bool = False
    session_idle_timeout_seconds: Optional[float] = None
    session_max_lifetime_seconds: Optional[float] = None

    _client: Any = None
    _verified: bool = False
    _used: Any = None  # session IDs this executor has executed in
    _lock: Any = None
    _session_secret: Any = None  # private, so that it is in no repr, dump or schema

    def __init__(self, **data):
        secret = data.pop("session_secret", None)
        data["language"] = data.get("language") or PYTHON
        if data["language"] in _CODE_BLOCK_DELIMITERS and "code_block_delimiters" not in data:
            data["code_block_delimiters"] = list(_CODE_BLOCK_DELIMITERS[data["language"]])
        super().__init__(**data)
        if self.kubeconfig_path or self.kubeconfig_context:
            raise ValueError("GkexecCodeExecutor: kubeconfig_path and kubeconfig_context do not apply: the Kubernetes "
                             "credentials live in the gkexec serve sidecar (its --kubeconfig/--context flags)")
        if self.optimize_data_file and self.language != PYTHON:
            raise ValueError(f"GkexecCodeExecutor(language={self.language!r}): optimize_data_file does not apply: "
                             "ADK explores data files with Python code (pandas)")
        if secret is None:
            secret = os.environ.get(SESSION_SECRET_ENV) or None
        if self.stateful:
            # Refuse a missing or short one now, not at the first execution.
            _session_key(secret, "GkexecCodeExecutor(stateful=True)", f" (session_secret, or ${SESSION_SECRET_ENV})")
        self._session_secret = secret
        self._client = GkexecClient(base_url=self.base_url, token=self.token, token_file=self.token_file,
                                    max_retries=self.max_retries)
        self._verified = False
        self._used = set()
        self._lock = threading.Lock()

    def verify(self) -> dict:
        """Checks the constructor's sandbox parameters against the sidecar; returns its config.

        Called on first use; call it at start-up to fail early. Raises ValueError on a mismatch.
        """
        cfg = self._client.config()
        wrong = []
        languages = cfg.get("languages") or [PYTHON]  # a sidecar that names none runs Python only
        if self.language not in languages:
            wrong.append(f"language={self.language!r} but the sidecar runs {', '.join(languages)}")
        for param, (field, flag) in _SANDBOX_PARAMETERS.items():
            want = getattr(self, param)
            if want is None:
                continue
            have = cfg.get(field)
            if (float(want) != float(have)) if field == "timeout_seconds" else (str(want) != str(have)):
                wrong.append(f"{param}={want!r} but the sidecar has {have!r} (set gkexec serve {flag})")
        if wrong:
            raise ValueError("GkexecCodeExecutor: the sidecar at " + self._client.base_url + " runs a different sandbox: "
                             + "; ".join(wrong))
        self._verified = True
        return cfg

    def execute_code(self, invocation_context: InvocationContext,
                     code_execution_input: CodeExecutionInput) -> CodeExecutionResult:
        files = {f.name: input_file_bytes(f.content) for f in code_execution_input.input_files or []}
        try:
            if not self._verified:
                self.verify()
            note = ""
            if self.stateful:
                result, note = self._execute_stateful(invocation_context, code_execution_input, files)
            else:
                # No execution_id: it names the sandbox's objects, and each execution needs its own.
                result = self._client.execute(code_execution_input.code, files=files, language=self._wire_language())
        except GkexecError as e:
            if e.model_actionable or self.errors_as_stderr:
                return CodeExecutionResult(stderr=f"gkexec: the code was not run ({e.code}): {e.message}\n")
            raise
        fields = adk_fields(result)
        return CodeExecutionResult(
            stdout=fields["stdout"],
            stderr=fields["stderr"] + note,
            output_files=[File(name=f["name"], content=f["content"], mime_type=f["mime_type"])
                          for f in fields["output_files"]],
        )

    def session_for(self, invocation_context: InvocationContext, code_execution_input: CodeExecutionInput) -> str:
        """The gkexec session ID of an execution: from its execution_id, else (ADK left it unset)
        from the invocation context's ADK session, else its invocation."""
        key = code_execution_input.execution_id
        if not key:
            session = getattr(invocation_context, "session", None)
            key = getattr(session, "id", None) or invocation_context.invocation_id
        return session_id_for(key, self._session_secret, self.language)

    def close_session(self, session_id: str) -> None:
        """Ends a session this executor opened (see session_for); one already over is not an error."""
        with self._lock:
            self._used.discard(session_id)
        try:
            self._client.close_session(session_id)
        except GkexecError as e:
            if e.status not in (404, 410):
                raise

    def _wire_language(self) -> Optional[str]:
        """The language as the sidecar is told it: Python as none, so that a Python request or
        session is the same as before there were languages; another language always, so that
        the sandbox of a session checks the code is in its language."""
        return None if self.language == PYTHON else self.language

    def _open(self, session_id: str) -> None:
        self._client.open_session(session_id, idle_timeout_seconds=self.session_idle_timeout_seconds,
                                  max_lifetime_seconds=self.session_max_lifetime_seconds,
                                  language=self._wire_language())

    def _execute_stateful(self, invocation_context: InvocationContext, code_execution_input: CodeExecutionInput,
                          files: dict) -> tuple[ExecutionResult, str]:
        """Runs the code in its session; returns the result and a note for the model's stderr."""
        sid = self.session_for(invocation_context, code_execution_input)
        code = code_execution_input.code
        note = ""
        try:
            result = self._client.execute_in_session(sid, code, files=files, language=self._wire_language())
        except GkexecError as e:
            if e.status == 410 and e.result is not None:
                # The code ran and ended the session: give its result, never run it again.
                with self._lock:
                    self._used.discard(sid)
                log.warning("gkexec session %s ended during an execution; its state is lost: %s", sid, e.message)
                return ExecutionResult.from_json(e.result), _lost_note(sid, e.message, after=True)
            if e.status not in (404, 410):
                raise
            with self._lock:
                lost = sid in self._used
            if lost:
                log.warning("gkexec session %s is over (%s); opening a fresh one: its variables and files are lost",
                            sid, e.code)
                note = _lost_note(sid, e.message, after=False)
            self._open(sid)
            result = self._client.execute_in_session(sid, code, files=files, language=self._wire_language())
        with self._lock:
            self._used.add(sid)
        return result, note


def _lost_note(session_id: str, why: str, after: bool) -> str:
    if after:
        return (f"\ngkexec: session {session_id} ended during this execution ({why}); variables, imports and "
                "files are lost, and the next execution starts in a fresh session.\n")
    return (f"\ngkexec: session {session_id} had ended ({why}); this code ran in a fresh session: variables, "
            "imports and files from earlier executions are lost.\n")
