"""gkexec_client: the mapping alone, then the client against a real `gkexec serve`."""

import base64
import threading
import time
import unittest
import urllib.request

import support
from gkexec_client import ExecutionResult, GkexecClient, GkexecError, adk_fields, input_file_bytes


def in_flight(url: str) -> int:
    """gkexec_serve_executions_in_flight, from the server's /metrics."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("gkexec_serve_executions_in_flight "):
                return int(line.split()[1])
    raise AssertionError("/metrics has no gkexec_serve_executions_in_flight")


def result(**overrides) -> ExecutionResult:
    doc = {"execution_id": "x", "exit_code": 0, "outcome": "success", "stdout": "", "stderr": "", "files": []}
    doc.update(overrides)
    return ExecutionResult.from_json(doc)


class MappingTest(unittest.TestCase):
    """adk_fields and from_json, without a server."""

    def test_success(self):
        f = adk_fields(result(stdout="42\n", files=[{"path": "plots/a.png", "size": 3, "content_base64": "AAEC"}]))
        self.assertEqual(f["stdout"], "42\n")
        self.assertEqual(f["stderr"], "")
        self.assertEqual(f["output_files"], [{"name": "plots/a.png", "content": "AAEC", "mime_type": "image/png"}])

    def test_failures_are_said_on_stderr(self):
        cases = {
            "exit without output": (dict(exit_code=3, outcome="error"), "exited with status 3"),
            "timeout": (dict(exit_code=137, outcome="timeout", timed_out=True, stderr="partial"), "time limit"),
            "oom": (dict(exit_code=137, outcome="oom", oom_killed=True), "out of memory"),
        }
        for name, (fields, note) in cases.items():
            with self.subTest(name):
                stderr = adk_fields(result(**fields))["stderr"]
                self.assertIn(note, stderr)
                self.assertTrue(stderr.endswith("\n"))
        traceback = "Traceback...\nZeroDivisionError: division by zero\n"
        self.assertEqual(adk_fields(result(exit_code=1, outcome="error", stderr=traceback))["stderr"], traceback,
                         "a traceback speaks for itself")

    def test_truncation_is_noted_on_stdout(self):
        f = adk_fields(result(stdout="aaa", stdout_truncated=True))
        self.assertTrue(f["stdout"].startswith("aaa"))
        self.assertIn("truncated", f["stdout"])
        self.assertEqual(f["stderr"], "", "truncation is not a failure")

    def test_exact_bytes_from_the_base64_twin(self):
        r = result(stdout="ok\ufffd", stdout_base64=base64.b64encode(b"ok\xff").decode())
        self.assertEqual(r.stdout_bytes, b"ok\xff")
        self.assertEqual(result(stdout="é").stdout_bytes, "é".encode())

    def test_input_file_bytes(self):
        self.assertEqual(input_file_bytes(b"\x00\x01"), b"\x00\x01")
        self.assertEqual(input_file_bytes(base64.b64encode(b"a,b\n").decode()), b"a,b\n")
        self.assertEqual(input_file_bytes("not base64!"), b"not base64!")


class ServerTest(unittest.TestCase):
    """The client against a real `gkexec serve` on the local gVisor cluster."""

    def setUp(self):
        support.require_server(self)
        self.client = GkexecClient(base_url=support.URL, token=support.TOKEN)

    def test_prints_and_exits(self):
        r = self.client.execute("import sys\nprint(6 * 7)\nprint('to stderr', file=sys.stderr)")
        self.assertEqual((r.outcome, r.exit_code, r.stdout, r.stderr), ("success", 0, "42\n", "to stderr\n"))
        self.assertTrue(r.execution_id)
        self.assertIn("run", r.phase_seconds)

    def test_files_round_trip(self):
        blob = bytes(range(256))
        code = ("import os\ndata = open('in/blob.bin', 'rb').read()\nos.makedirs('output/sub', exist_ok=True)\n"
                "open('output/sub/rev.bin', 'wb').write(data[::-1])\nprint(len(data))")
        r = self.client.execute(code, files={"in/blob.bin": blob})
        self.assertEqual(r.stdout, "256\n", r.stderr)
        self.assertEqual([(f.path, f.content, f.size) for f in r.files], [("sub/rev.bin", blob[::-1], 256)])

    def test_non_zero_exit_is_a_result(self):
        r = self.client.execute("1/0")
        self.assertEqual((r.outcome, r.exit_code), ("error", 1))
        self.assertIn("ZeroDivisionError", r.stderr)

    def test_non_utf8_output_is_exact(self):
        r = self.client.execute("import sys\nsys.stdout.buffer.write(b'ok\\xff\\n')")
        self.assertEqual(r.stdout_bytes, b"ok\xff\n")

    def test_timeout_is_a_result(self):
        self.assertGreater(support.TIMEOUT_SECONDS, 0, "GKEXEC_TEST_TIMEOUT_SECONDS")
        started = time.monotonic()
        r = self.client.execute(f"import time\nprint('started', flush=True)\ntime.sleep({support.TIMEOUT_SECONDS * 10})")
        self.assertTrue(r.timed_out)
        self.assertEqual(r.outcome, "timeout")
        self.assertEqual(r.stdout, "started\n", "the output until the kill comes back")
        self.assertLess(time.monotonic() - started, support.TIMEOUT_SECONDS * 5)

    def test_invalid_request_raises_a_model_actionable_error(self):
        with self.assertRaises(GkexecError) as cm:
            self.client.execute("print(1)", files={"../escape": b""})
        e = cm.exception
        self.assertEqual((e.status, e.code, e.model_actionable), (400, "invalid_request", True))
        self.assertIn("working directory", e.message)

    def test_wrong_token(self):
        with self.assertRaises(GkexecError) as cm:
            GkexecClient(base_url=support.URL, token="wrong").execute("print(1)")
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))

    def test_config_and_ready(self):
        cfg = self.client.config()
        self.assertEqual(cfg["namespace"], support.NAMESPACE)
        self.assertEqual(cfg["timeout_seconds"], support.TIMEOUT_SECONDS)
        ready, status = self.client.ready()
        self.assertTrue(ready, status)

    def test_busy_is_retried_after_retry_after(self):
        # The server runs one execution at a time: while the first runs, another is answered 429.
        first = {}
        t = threading.Thread(target=lambda: first.update(r=self.client.execute("import time; time.sleep(4); print('first')")))
        t.start()
        try:
            deadline = time.monotonic() + 60
            while in_flight(support.URL) < 1:  # until the first one holds the slot
                self.assertLess(time.monotonic(), deadline, "the first execution never started")
                time.sleep(0.1)
            with self.assertRaises(GkexecError) as cm:
                GkexecClient(base_url=support.URL, token=support.TOKEN, max_retries=0).execute("print('probe')")
            self.assertEqual((cm.exception.status, cm.exception.code), (429, "busy"))
            self.assertGreaterEqual(cm.exception.retry_after or 0, 1)
            r = GkexecClient(base_url=support.URL, token=support.TOKEN, max_retries=10).execute("print('second')")
            self.assertEqual(r.stdout, "second\n")
        finally:
            t.join()
        self.assertEqual(first["r"].stdout, "first\n")

    def test_unreachable(self):
        with self.assertRaises(GkexecError) as cm:
            GkexecClient(base_url=support.closed_port_url(), timeout_seconds=5).execute("print(1)")
        self.assertEqual((cm.exception.status, cm.exception.code), (0, "unreachable"))


if __name__ == "__main__":
    unittest.main()
