"""Sessions against a real `gkexec serve` on the local gVisor cluster: GkexecClient's session calls
and GkexecCodeExecutor(stateful=True), as the agent ServiceAccount."""

import secrets
import time
import unittest
import uuid

import support
from gkexec_client import GkexecClient, GkexecError
from gkexec_code_executor import GkexecCodeExecutor
from google.adk.agents.invocation_context import InvocationContext
from google.adk.code_executors.code_execution_utils import CodeExecutionInput


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class SessionServerTest(unittest.TestCase):
    def setUp(self):
        support.require_server(self)
        self.client = GkexecClient(base_url=support.URL, token=support.TOKEN, max_retries=10)

    def close_quietly(self, sid):
        try:
            self.client.close_session(sid)
        except GkexecError:
            pass

    def test_state_persists_streams_and_ends(self):
        sid = unique("py-sess")
        opened = self.client.open_session(sid)
        self.addCleanup(self.close_quietly, sid)
        self.assertEqual(opened["session_id"], sid)
        self.assertIn(opened["sandbox"], ("warm", "cold"))
        self.assertTrue(opened["pod_name"])

        self.assertEqual(self.client.execute_in_session(sid, "x = 1").stdout, "")
        r = self.client.execute_in_session(sid, "print(x)")
        self.assertEqual((r.outcome, r.exit_code, r.stdout), ("success", 0, "1\n"))

        chunks, arrived = [], []
        with self.client.execute_in_session_stream(sid, "import time\nprint('before', flush=True)\ntime.sleep(2)\nx += 1\nprint(x)") as run:
            for chunk in run:
                chunks.append(chunk)
                arrived.append(time.monotonic())
        done = time.monotonic()
        self.assertEqual((run.result.outcome, run.result.stdout), ("success", "before\n2\n"))
        self.assertEqual("".join(c.text for c in chunks if c.stream == "stdout"), "before\n2\n")
        self.assertTrue(chunks[0].text.startswith("before"), chunks[0].text)  # chunks need not be whole lines
        self.assertGreater(done - arrived[0], 1.5, "the first line came only with the end, not while the code slept")

        self.assertIsNone(self.client.close_session(sid))
        with self.assertRaises(GkexecError) as cm:
            self.client.execute_in_session(sid, "print(x)")
        self.assertIn((cm.exception.status, cm.exception.code), [(404, "session_not_found"), (410, "session_ended")])
        with self.assertRaises(GkexecError) as cm:
            self.client.close_session(sid)
        self.assertIn(cm.exception.status, (404, 410))

    def test_unknown_session_is_404(self):
        sid = unique("py-none")
        with self.assertRaises(GkexecError) as cm:
            self.client.execute_in_session(sid, "print(1)")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "session_not_found"))
        with self.assertRaises(GkexecError) as cm:
            self.client.close_session(sid)
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "session_not_found"))


class StatefulExecutorServerTest(unittest.TestCase):
    def setUp(self):
        support.require_server(self)

    def test_a_variable_survives_between_calls_of_one_execution_id(self):
        ex = GkexecCodeExecutor(base_url=support.URL, token=support.TOKEN, stateful=True, max_retries=10,
                                session_secret=secrets.token_bytes(32))
        ctx = InvocationContext()
        eid = unique("adk-chat")
        first_in = CodeExecutionInput(code="x = 41", execution_id=eid)
        sid = ex.session_for(ctx, first_in)
        self.addCleanup(ex.close_session, sid)
        with self.assertNoLogs("gkexec_code_executor", "WARNING"):
            first = ex.execute_code(ctx, first_in)
            second = ex.execute_code(ctx, CodeExecutionInput(code="print(x + 1)", execution_id=eid))
        self.assertEqual((first.stdout, first.stderr), ("", ""))
        self.assertEqual((second.stdout, second.stderr), ("42\n", ""))

        # Another execution_id is another session: x is not there.
        other_in = CodeExecutionInput(code="print(x)", execution_id=unique("adk-other"))
        self.addCleanup(ex.close_session, ex.session_for(ctx, other_in))
        other = ex.execute_code(ctx, other_in)
        self.assertIn("NameError", other.stderr)

        ex.close_session(sid)
        client = GkexecClient(base_url=support.URL, token=support.TOKEN)
        with self.assertRaises(GkexecError) as cm:
            client.execute_in_session(sid, "print(x)")
        self.assertIn(cm.exception.status, (404, 410))


if __name__ == "__main__":
    unittest.main()
