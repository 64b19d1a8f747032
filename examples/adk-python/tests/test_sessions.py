"""Sessions: GkexecClient's session calls and the stateful GkexecCodeExecutor, against StubServer
(the fake cluster cannot attach to a sandbox, and these need answers on cue: 404, 409, 410)."""

import hashlib
import hmac
import json
import os
import unittest
from unittest import mock

import support
from gkexec_client import GkexecClient, GkexecError
from gkexec_code_executor import GkexecCodeExecutor, session_id_for
from google.adk.agents.invocation_context import InvocationContext
from google.adk.code_executors.code_execution_utils import CodeExecutionInput

RESULT = {"execution_id": "e-1", "exit_code": 0, "outcome": "success", "stdout": "42\n", "stderr": "",
          "files": [], "timed_out": False}
OPENED = {"session_id": "s-1", "sandbox": "warm", "pod_name": "gkexec-warm-abc"}
CONFIG = {"namespace": "ns", "timeout_seconds": 300, "start_timeout_seconds": 120}


def error(status, code, retryable=False, result=None, headers=None):
    doc = {"error": {"code": code, "message": f"{code} happened", "retryable": retryable}}
    if result is not None:
        doc["result"] = result
    return support.json_answer(status, doc, headers)


class ClientSessionTest(unittest.TestCase):
    def client(self, stub, **kw):
        return GkexecClient(base_url=stub.url, token="t0ken", timeout_seconds=30, **kw)

    def test_open_execute_close(self):
        with support.StubServer(support.json_answer(201, OPENED), support.json_answer(200, RESULT),
                                support.Answer(204, "application/json")) as stub:
            c = self.client(stub)
            self.assertEqual(c.open_session("s-1", idle_timeout_seconds=60), OPENED)
            self.assertEqual(c.execute_in_session("s-1", "print(x)").stdout, "42\n")
            self.assertIsNone(c.close_session("s-1"))
        self.assertEqual(stub.paths, ["POST /v1/sessions", "POST /v1/sessions/s-1/executions", "DELETE /v1/sessions/s-1"])
        self.assertEqual(json.loads(stub.requests[0][1]), {"session_id": "s-1", "idle_timeout_seconds": 60})
        self.assertEqual(json.loads(stub.requests[1][1]), {"code": "print(x)"})
        self.assertEqual(stub.requests[2][0]["authorization"], "Bearer t0ken")

    def test_session_errors(self):
        with support.StubServer(error(404, "session_not_found"), error(410, "session_ended", result=RESULT),
                                error(404, "session_not_found")) as stub:
            c = self.client(stub)
            with self.assertRaises(GkexecError) as cm:
                c.execute_in_session("gone", "1")
            self.assertEqual((cm.exception.status, cm.exception.code), (404, "session_not_found"))
            with self.assertRaises(GkexecError) as cm:
                c.execute_in_session("gone", "1")
            self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.result["stdout"]), (410, "session_ended", "42\n"))
            with self.assertRaises(GkexecError) as cm:
                c.close_session("gone")
            self.assertEqual(cm.exception.status, 404)

    def test_busy_is_retried(self):
        busy = error(409, "session_busy", retryable=True, headers={"Retry-After": "0"})
        with support.StubServer(busy, support.json_answer(200, RESULT)) as stub:
            self.assertEqual(self.client(stub).execute_in_session("s-1", "1").stdout, "42\n")
        self.assertEqual(len(stub.requests), 2)

    def test_id_in_use_is_not_retried(self):
        with support.StubServer(error(409, "execution_id_in_use")) as stub:
            with self.assertRaises(GkexecError):
                self.client(stub).execute_in_session("s-1", "1", execution_id="e-1")
        self.assertEqual(len(stub.requests), 1)

    def test_stream(self):
        answer = support.Answer(parts=(support.output_line("stdout", b"42\n"), support.result_line(RESULT)))
        with support.StubServer(answer) as stub:
            with self.client(stub).execute_in_session_stream("s-1", "print(x)") as run:
                self.assertEqual([c.text for c in run], ["42\n"])
            self.assertEqual(run.result.stdout, "42\n")
        self.assertEqual(stub.paths, ["POST /v1/sessions/s-1/executions"])
        self.assertEqual(stub.requests[0][0]["accept"], support.NDJSON)


SECRET = "the python tests' session secret"


def hmac_id(secret: bytes, message: str) -> str:
    """The documented derivation, written out independently of the module's."""
    return "adk-" + hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


class SessionIDTest(unittest.TestCase):
    def test_a_deterministic_dns_label(self):
        seen = {}
        for raw in ["abc", "ADK_Session:1234/5", "x" * 200, "----", "é", "a-b", "A_B", ""]:
            sid = session_id_for(raw, SECRET)
            self.assertEqual(len(sid), 36, sid)
            self.assertRegex(sid, r"^adk-[0-9a-f]{32}$")
            self.assertEqual(sid, session_id_for(raw, SECRET))
            self.assertNotIn(sid, seen, f"{raw!r} and {seen.get(sid)!r}")
            seen[sid] = raw

    def test_keyed_with_the_secret(self):
        sid = session_id_for("chat-7", SECRET)
        self.assertEqual(sid, hmac_id(SECRET.encode(), "chat-7"))
        self.assertEqual(sid, session_id_for("chat-7", SECRET.encode()), "a str secret is its UTF-8 bytes")
        self.assertNotEqual(sid, session_id_for("chat-7", SECRET[:-1] + "!"), "another secret, the same ID")
        self.assertNotEqual(sid, session_id_for("chat-8", SECRET))
        # What can be computed without the secret must not be the ID: the readable form of earlier
        # releases ("adk-chat-7-<8 hex of SHA-256>"), a plain hash, an empty key.
        for name, unkeyed in {
            "the readable ID of earlier releases": "adk-chat-7-" + hashlib.sha256(b"chat-7").hexdigest()[:8],
            "SHA-256 of the ID": "adk-" + hashlib.sha256(b"chat-7").hexdigest()[:32],
            "HMAC with an empty key": hmac_id(b"", "chat-7"),
        }.items():
            self.assertNotEqual(sid, unkeyed, name)
        self.assertNotIn("chat", sid, "the ADK session's ID shows through")

    def test_a_missing_or_short_secret_is_refused(self):
        short = "fifteen bytes!!"
        for secret, want in [(None, "needs a session secret"), ("", "needs a session secret"), (b"", "needs a session secret"),
                             (short, "has 15 bytes; at least 16"), ("é" * 7, "has 14 bytes")]:
            with self.subTest(secret=secret), self.assertRaises(ValueError) as cm:
                session_id_for("chat-7", secret)
            self.assertIn(want, str(cm.exception))
            if secret:
                self.assertNotIn(str(secret), str(cm.exception))
        with self.assertRaises(TypeError):
            session_id_for("chat-7", 32)
        self.assertRegex(session_id_for("chat-7", "sixteen bytes!!!"), r"^adk-[0-9a-f]{32}$")


class StatefulExecutorTest(unittest.TestCase):
    def executor(self, stub, **kw):
        kw.setdefault("session_secret", SECRET)
        return GkexecCodeExecutor(base_url=stub.url, token="t0ken", stateful=True, max_retries=0, **kw)

    def run_code(self, ex, code, execution_id="chat-1"):
        return ex.execute_code(InvocationContext(), CodeExecutionInput(code=code, execution_id=execution_id))

    def test_opens_on_first_use_and_reuses(self):
        sid = session_id_for("chat-1", SECRET)
        with support.StubServer(support.json_answer(200, CONFIG),
                                error(404, "session_not_found"), support.json_answer(201, dict(OPENED, session_id=sid)),
                                support.json_answer(200, RESULT), support.json_answer(200, RESULT)) as stub:
            ex = self.executor(stub, session_idle_timeout_seconds=120)
            with self.assertNoLogs("gkexec_code_executor", "WARNING"):
                first = self.run_code(ex, "x = 42; print(x)")
                second = self.run_code(ex, "print(x)")
        self.assertEqual((first.stdout, first.stderr, second.stdout, second.stderr), ("42\n", "", "42\n", ""))
        self.assertEqual(stub.paths, ["GET /v1/config", f"POST /v1/sessions/{sid}/executions", "POST /v1/sessions",
                                      f"POST /v1/sessions/{sid}/executions", f"POST /v1/sessions/{sid}/executions"])
        self.assertEqual(json.loads(stub.requests[2][1]), {"session_id": sid, "idle_timeout_seconds": 120})

    def test_a_lost_session_is_reopened_and_said_so(self):
        sid = session_id_for("chat-1", SECRET)
        with support.StubServer(support.json_answer(200, CONFIG), support.json_answer(200, RESULT),
                                error(410, "session_ended"), support.json_answer(201, OPENED),
                                support.json_answer(200, RESULT)) as stub:
            ex = self.executor(stub)
            self.run_code(ex, "x = 42")
            with self.assertLogs("gkexec_code_executor", "WARNING") as logs:
                r = self.run_code(ex, "print(1)")
        self.assertIn(sid, logs.output[0])
        self.assertEqual(r.stdout, "42\n")
        self.assertIn("ran in a fresh session", r.stderr)
        self.assertEqual(stub.paths[-2:], ["POST /v1/sessions", f"POST /v1/sessions/{sid}/executions"])

    def test_code_that_ends_the_session_is_not_run_again(self):
        sid = session_id_for("chat-1", SECRET)
        died = dict(RESULT, exit_code=-1, outcome="timeout", timed_out=True, stdout="", stderr="boom\n")
        with support.StubServer(support.json_answer(200, CONFIG), error(410, "session_ended", result=died),
                                error(404, "session_not_found"), support.json_answer(201, OPENED),
                                support.json_answer(200, RESULT)) as stub:
            ex = self.executor(stub)
            with self.assertLogs("gkexec_code_executor", "WARNING"):
                r = self.run_code(ex, "import os; os._exit(1)")
            self.assertIn("boom", r.stderr)
            self.assertIn("ended during this execution", r.stderr)
            self.assertEqual(stub.paths.count("POST /v1/sessions"), 0, "the code was run again")
            # The next execution opens a fresh session, with nothing to warn about: the model was told.
            with self.assertNoLogs("gkexec_code_executor", "WARNING"):
                r = self.run_code(ex, "print(42)")
        self.assertEqual((r.stdout, r.stderr), ("42\n", ""))
        self.assertEqual(stub.paths[-3:], [f"POST /v1/sessions/{sid}/executions", "POST /v1/sessions",
                                           f"POST /v1/sessions/{sid}/executions"])

    def test_other_errors_raise(self):
        with support.StubServer(support.json_answer(200, CONFIG), error(403, "forbidden")) as stub:
            with self.assertRaises(GkexecError) as cm:
                self.run_code(self.executor(stub), "1")
        self.assertEqual(cm.exception.code, "forbidden")

    def test_stateless_sends_no_session(self):
        with support.StubServer(support.json_answer(200, CONFIG), support.json_answer(200, RESULT)) as stub:
            GkexecCodeExecutor(base_url=stub.url, token="t").execute_code(
                InvocationContext(), CodeExecutionInput(code="1", execution_id="chat-1"))
        self.assertEqual(stub.paths, ["GET /v1/config", "POST /v1/executions"])

    def test_close_session(self):
        with support.StubServer(support.Answer(204, "application/json"), error(404, "session_not_found")) as stub:
            ex = self.executor(stub)
            ex.close_session(session_id_for("chat-1", SECRET))
            ex.close_session(session_id_for("chat-1", SECRET))  # already over: not an error
        self.assertEqual(stub.paths, [f"DELETE /v1/sessions/{session_id_for('chat-1', SECRET)}"] * 2)

    def test_a_secret_is_required_when_stateful(self):
        with mock.patch.dict(os.environ, {"GKEXEC_SESSION_SECRET": ""}):
            with self.assertRaises(ValueError) as cm:
                GkexecCodeExecutor(base_url="http://127.0.0.1:1", stateful=True)
            msg = str(cm.exception)
            for want in ("GkexecCodeExecutor(stateful=True)", "session_secret", "$GKEXEC_SESSION_SECRET", "every replica"):
                self.assertIn(want, msg)
            with self.assertRaises(ValueError) as cm:
                GkexecCodeExecutor(base_url="http://127.0.0.1:1", stateful=True, session_secret="too short")
            self.assertIn("has 9 bytes; at least 16", str(cm.exception))
            self.assertNotIn("too short", str(cm.exception))
            GkexecCodeExecutor(base_url="http://127.0.0.1:1")  # stateless: no secret needed

    def test_the_secret_falls_back_to_the_environment(self):
        ctx, eid = InvocationContext(), CodeExecutionInput(code="1", execution_id="chat-1")
        env_secret = "a secret from the environment"
        with mock.patch.dict(os.environ, {"GKEXEC_SESSION_SECRET": env_secret}):
            from_env = GkexecCodeExecutor(base_url="http://127.0.0.1:1", stateful=True)
            given = GkexecCodeExecutor(base_url="http://127.0.0.1:1", stateful=True, session_secret=SECRET)
        self.assertEqual(from_env.session_for(ctx, eid), session_id_for("chat-1", env_secret))
        self.assertEqual(given.session_for(ctx, eid), session_id_for("chat-1", SECRET), "the parameter wins")

    def test_the_secret_is_not_a_field(self):
        ex = GkexecCodeExecutor(base_url="http://127.0.0.1:1", stateful=True, session_secret=SECRET)
        self.assertNotIn(SECRET, repr(ex))
        self.assertNotIn("session_secret", type(ex).__annotations__)
        self.assertFalse(hasattr(ex, "session_secret"))

    def test_the_secret_is_never_logged(self):
        with support.StubServer(support.json_answer(200, CONFIG), support.json_answer(200, RESULT),
                                error(410, "session_ended"), support.json_answer(201, OPENED),
                                support.json_answer(200, RESULT)) as stub:
            ex = self.executor(stub)
            with self.assertLogs(level="DEBUG") as logs:
                self.run_code(ex, "x = 42")
                self.run_code(ex, "print(1)")
        self.assertTrue(logs.output)
        self.assertFalse([line for line in logs.output if SECRET in line], logs.output)


if __name__ == "__main__":
    unittest.main()
