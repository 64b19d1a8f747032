"""Sessions: GkexecClient's session calls and the stateful GkexecCodeExecutor, against StubServer
(the fake cluster cannot attach to a sandbox, and these need answers on cue: 404, 409, 410)."""

import json
import re
import unittest

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


class SessionIDTest(unittest.TestCase):
    def test_a_deterministic_dns_label(self):
        for raw in ["abc", "ADK_Session:1234/5", "x" * 200, "----", "é", "a-b", "A_B"]:
            sid = session_id_for(raw)
            self.assertLessEqual(len(sid), 38, sid)
            self.assertRegex(sid, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
            self.assertEqual(sid, session_id_for(raw))
        self.assertNotEqual(session_id_for("a-b"), session_id_for("A_B"))
        self.assertTrue(session_id_for("Chat 7").startswith("adk-chat-7-"))


class StatefulExecutorTest(unittest.TestCase):
    def executor(self, stub, **kw):
        return GkexecCodeExecutor(base_url=stub.url, token="t0ken", stateful=True, max_retries=0, **kw)

    def run_code(self, ex, code, execution_id="chat-1"):
        return ex.execute_code(InvocationContext(), CodeExecutionInput(code=code, execution_id=execution_id))

    def test_opens_on_first_use_and_reuses(self):
        sid = session_id_for("chat-1")
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
        sid = session_id_for("chat-1")
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
        sid = session_id_for("chat-1")
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
            ex.close_session(session_id_for("chat-1"))
            ex.close_session(session_id_for("chat-1"))  # already over: not an error
        self.assertTrue(all(re.match(r"DELETE /v1/sessions/adk-chat-1-[0-9a-f]{8}$", p) for p in stub.paths), stub.paths)


if __name__ == "__main__":
    unittest.main()
