"""Languages: what GkexecClient sends for each, and GkexecCodeExecutor(language=...) against
StubServer (checked against /v1/config's languages, the fences ADK takes code from, its sessions)."""

import json
import unittest

import support
from gkexec_client import GkexecClient, GkexecError
from gkexec_code_executor import GkexecCodeExecutor, session_id_for
from google.adk.agents.invocation_context import InvocationContext
from google.adk.code_executors.base_code_executor import BaseCodeExecutor
from google.adk.code_executors.code_execution_utils import CodeExecutionInput
from test_sessions import OPENED, RESULT, SECRET, error, hmac_id

LANGUAGES = ["bash", "javascript", "python"]
CONFIG = {"namespace": "ns", "timeout_seconds": 300, "start_timeout_seconds": 120, "languages": LANGUAGES}


def body(stub, i):
    return json.loads(stub.requests[i][1])


class ClientLanguageTest(unittest.TestCase):
    """Every call that runs code or opens a session passes language on, and only when given."""

    def client(self, stub):
        return GkexecClient(base_url=stub.url, token="t0ken", timeout_seconds=30)

    def test_each_call_sends_the_language(self):
        stream = support.Answer(parts=(support.result_line(RESULT),))
        with support.StubServer(support.json_answer(200, RESULT), stream, support.json_answer(201, OPENED),
                                support.json_answer(200, RESULT), support.Answer(parts=(support.result_line(RESULT),)),
                                support.json_answer(200, RESULT)) as stub:
            c = self.client(stub)
            c.execute("echo 1", language="bash")
            with c.execute_stream("console.log(1)", language="javascript") as run:
                list(run)
            c.open_session("s-1", language="bash")
            c.execute_in_session("s-1", "echo $x", language="bash")
            with c.execute_in_session_stream("s-1", "echo $x", language="bash") as run:
                list(run)
            c.execute("print(1)")
        self.assertEqual([body(stub, i).get("language") for i in range(6)],
                         ["bash", "javascript", "bash", "bash", "bash", None])
        self.assertEqual(body(stub, 2), {"session_id": "s-1", "language": "bash"})
        self.assertNotIn("language", body(stub, 5), "no language given: the server's default, as before")

    def test_a_refused_language_is_a_model_actionable_error(self):
        refused = error(400, "invalid_request")
        with support.StubServer(refused) as stub:
            with self.assertRaises(GkexecError) as cm:
                self.client(stub).execute("x", language="cobol")
        self.assertTrue(cm.exception.model_actionable)


class ExecutorLanguageTest(unittest.TestCase):
    def executor(self, stub, **kw):
        return GkexecCodeExecutor(base_url=stub.url, token="t0ken", max_retries=0, **kw)

    def run_code(self, ex, code, execution_id=None):
        return ex.execute_code(InvocationContext(), CodeExecutionInput(code=code, execution_id=execution_id))

    def test_every_execution_runs_in_the_executors_language(self):
        for language, sent in [("bash", "bash"), ("javascript", "javascript"), ("python", None), (None, None)]:
            with self.subTest(language=language):
                kw = {} if language is None else {"language": language}
                with support.StubServer(support.json_answer(200, CONFIG), support.json_answer(200, RESULT),
                                        support.json_answer(200, RESULT)) as stub:
                    ex = self.executor(stub, **kw)
                    self.assertEqual(ex.language, language or "python")
                    self.run_code(ex, "code")
                    self.run_code(ex, "more code")
                self.assertEqual(stub.paths, ["GET /v1/config", "POST /v1/executions", "POST /v1/executions"])
                for i in (1, 2):
                    self.assertEqual(body(stub, i).get("language"), sent)

    def test_the_language_is_checked_against_the_sidecar(self):
        with support.StubServer(support.json_answer(200, dict(CONFIG, languages=["python"]))) as stub:
            with self.assertRaises(ValueError) as cm:
                self.run_code(self.executor(stub, language="javascript"), "console.log(1)")
        self.assertIn("language='javascript' but the sidecar runs python", str(cm.exception))
        self.assertEqual(stub.paths, ["GET /v1/config"], "code ran in a language the sidecar does not run")
        # A sidecar from before languages names none: it runs Python only.
        before = {k: v for k, v in CONFIG.items() if k != "languages"}
        with support.StubServer(support.json_answer(200, before)) as stub:
            with self.assertRaises(ValueError):
                self.executor(stub, language="bash").verify()
        with support.StubServer(support.json_answer(200, before)) as stub:
            self.assertEqual(self.executor(stub).verify(), before)
        with support.StubServer(support.json_answer(200, CONFIG)) as stub:
            with self.assertRaises(ValueError) as cm:
                self.executor(stub, language="Bash").verify()
        self.assertIn("bash, javascript, python", str(cm.exception))

    def test_a_language_the_image_lacks_is_said_on_stderr(self):
        lacks = support.json_answer(400, {"error": {"code": "invalid_request", "retryable": False, "message":
                                                    "the sandbox refused it: language javascript: the sandbox image has no node on its PATH"}})
        with support.StubServer(support.json_answer(200, CONFIG), lacks) as stub:
            r = self.run_code(self.executor(stub, language="javascript"), "console.log(1)")
        self.assertIn("was not run (invalid_request)", r.stderr)
        self.assertIn("no node on its PATH", r.stderr)

    def test_code_comes_from_the_languages_fences(self):
        default = BaseCodeExecutor.code_block_delimiters
        python = GkexecCodeExecutor(base_url="http://127.0.0.1:1")
        self.assertEqual(python.code_block_delimiters, default, "Python keeps ADK's fences")
        for language, fences in [("bash", ["tool_code", "bash", "sh"]), ("javascript", ["tool_code", "javascript", "js"])]:
            with self.subTest(language=language):
                ex = GkexecCodeExecutor(base_url="http://127.0.0.1:1", language=language)
                self.assertEqual(ex.code_block_delimiters, [("```" + f + "\n", "\n```") for f in fences])
        mine = [("```shell\n", "\n```")]
        self.assertEqual(GkexecCodeExecutor(base_url="http://127.0.0.1:1", language="bash", code_block_delimiters=mine)
                         .code_block_delimiters, mine, "fences given are kept")

    def test_data_file_exploration_is_python_only(self):
        with self.assertRaises(ValueError) as cm:
            GkexecCodeExecutor(base_url="http://127.0.0.1:1", language="bash", optimize_data_file=True)
        self.assertIn("optimize_data_file", str(cm.exception))
        GkexecCodeExecutor(base_url="http://127.0.0.1:1", optimize_data_file=True)

    def test_a_stateful_executor_opens_its_sessions_in_its_language(self):
        sid = session_id_for("chat-1", SECRET, "bash")
        with support.StubServer(support.json_answer(200, CONFIG), error(404, "session_not_found"),
                                support.json_answer(201, dict(OPENED, session_id=sid)),
                                support.json_answer(200, RESULT), support.json_answer(200, RESULT)) as stub:
            ex = self.executor(stub, language="bash", stateful=True, session_secret=SECRET)
            self.run_code(ex, "x=42", "chat-1")
            self.run_code(ex, "echo $x", "chat-1")
        self.assertEqual(stub.paths, ["GET /v1/config", f"POST /v1/sessions/{sid}/executions", "POST /v1/sessions",
                                      f"POST /v1/sessions/{sid}/executions", f"POST /v1/sessions/{sid}/executions"])
        self.assertEqual(body(stub, 2), {"session_id": sid, "language": "bash"})
        self.assertEqual([body(stub, i)["language"] for i in (1, 3, 4)], ["bash"] * 3,
                         "every execution names the language, so that the session's sandbox checks it")


class SessionIDLanguageTest(unittest.TestCase):
    def test_each_language_has_its_own_session(self):
        python = session_id_for("chat-7", SECRET)
        self.assertEqual(python, hmac_id(SECRET.encode(), "chat-7"), "Python's IDs are as before languages")
        self.assertEqual(session_id_for("chat-7", SECRET, "python"), python)
        ids = {lang: session_id_for("chat-7", SECRET, lang) for lang in LANGUAGES}
        self.assertEqual(len(set(ids.values())), 3, ids)
        for lang in ("bash", "javascript"):
            self.assertEqual(ids[lang], hmac_id(SECRET.encode(), lang + "\x00chat-7"))
            self.assertRegex(ids[lang], r"^adk-[0-9a-f]{32}$")

    def test_a_nul_in_the_execution_id_is_refused(self):
        # With one, the Python session of "bash\x00chat-7" would be the bash session of "chat-7".
        for lang in LANGUAGES:
            with self.subTest(language=lang), self.assertRaises(ValueError) as cm:
                session_id_for("bash\x00chat-7", SECRET, lang)
            self.assertIn("NUL", str(cm.exception))

    def test_the_executor_keys_its_sessions_by_its_language(self):
        ctx, eid = InvocationContext(), CodeExecutionInput(code="1", execution_id="chat-1")
        for lang in LANGUAGES:
            ex = GkexecCodeExecutor(base_url="http://127.0.0.1:1", stateful=True, session_secret=SECRET, language=lang)
            self.assertEqual(ex.session_for(ctx, eid), session_id_for("chat-1", SECRET, lang))


if __name__ == "__main__":
    unittest.main()
