"""gkexec_client: the mapping alone, streaming against a stub of the server's framing, then the
client against a real `gkexec serve`."""

import base64
import json
import threading
import time
import unittest
import urllib.request

import support
from gkexec_client import ExecutionResult, GkexecClient, GkexecError, OutputChunk, adk_fields, input_file_bytes


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


RESULT = {"execution_id": "s-1", "exit_code": 0, "outcome": "success", "stdout": "one\ntwo ✓\n", "stderr": "warn\n",
          "files": [], "timed_out": False}


class StreamTest(unittest.TestCase):
    """execute_stream against StubServer, which frames its answers as `gkexec serve` does."""

    def client(self, stub: support.StubServer, **kw) -> GkexecClient:
        return GkexecClient(base_url=stub.url, token="t0ken", timeout_seconds=30, **kw)

    def test_chunks_come_as_they_are_sent(self):
        got_first = threading.Event()
        answer = support.Answer(wait_seconds=10, headers={"X-Gkexec-Execution-Id": "s-1"}, parts=(
            support.output_line("stdout", b"one\n"),
            got_first,  # the rest is sent only once the client has the first chunk
            support.output_line("stderr", b"warn\n"),
            support.output_line("stdout", "two ✓\n".encode()),
            support.result_line(RESULT)))
        with support.StubServer(answer) as stub:
            chunks = []
            with self.client(stub).execute_stream("print(1)", execution_id="s-1") as run:
                self.assertEqual(run.execution_id, "s-1")
                self.assertIsNone(run.result, "no result before the end")
                for chunk in run:
                    chunks.append(chunk)
                    got_first.set()
        self.assertEqual(answer.waited, [True], "the first chunk reached the caller only with the rest")
        self.assertEqual(chunks, [OutputChunk("stdout", b"one\n", "one\n"), OutputChunk("stderr", b"warn\n", "warn\n"),
                                  OutputChunk("stdout", "two ✓\n".encode(), "two ✓\n")])
        self.assertEqual((run.result.execution_id, run.result.stdout, run.result.stderr), ("s-1", "one\ntwo ✓\n", "warn\n"))
        headers, body = stub.requests[0]
        self.assertEqual((headers["accept"], headers["authorization"]), (support.NDJSON, "Bearer t0ken"))
        self.assertEqual(json.loads(body), {"code": "print(1)", "execution_id": "s-1"})

    def test_bytes_that_are_not_utf8_are_exact(self):
        answer = support.Answer(parts=(support.output_line("stdout", b"ok\xff\n"), support.output_line("stderr", "é".encode()),
                                       support.result_line(dict(RESULT, stdout="ok\ufffd\n", stdout_base64=base64.b64encode(b"ok\xff\n").decode()))))
        self.assertIn(b'"data_base64":"b2v/Cg=="', answer.parts[0])
        with support.StubServer(answer) as stub:
            with self.client(stub).execute_stream("1") as run:
                chunks = list(run)
        self.assertEqual([(c.stream, c.data, c.text) for c in chunks], [("stdout", b"ok\xff\n", "ok\ufffd\n"), ("stderr", "é".encode(), "é")])
        self.assertEqual(b"".join(c.data for c in chunks if c.stream == "stdout"), run.result.stdout_bytes)

    def test_an_error_after_output_raises_with_the_partial_result(self):
        partial = dict(RESULT, stdout="so far\n", exit_code=0)
        answer = support.Answer(parts=(support.output_line("stdout", b"so far\n"),
                                       support.error_line(503, "sandbox_failed", "the sandbox ended without a result", True, "s-1", partial)))
        with support.StubServer(answer) as stub:
            run = self.client(stub).execute_stream("1")
            self.assertEqual(next(run).text, "so far\n")
            with self.assertRaises(GkexecError) as cm:
                next(run)
        e = cm.exception
        self.assertEqual((e.status, e.code, e.retryable, e.execution_id), (503, "sandbox_failed", True, "s-1"))
        self.assertEqual(e.result["stdout"], "so far\n")
        self.assertIsNone(run.result)

    def test_failures_before_any_output_raise_from_the_call_and_are_retried(self):
        busy = support.json_answer(429, {"error": {"code": "busy", "message": "1 in flight", "retryable": True}}, {"Retry-After": "1"})
        denied = support.json_answer(401, {"error": {"code": "unauthorized", "message": "wrong token", "retryable": False}})
        ok = support.Answer(parts=(support.result_line(RESULT),))
        with support.StubServer(busy, ok, denied) as stub:
            with self.client(stub, max_retries=1).execute_stream("1") as run:
                self.assertEqual(list(run), [], "a result with no output lines")
            self.assertEqual(run.result.stdout, RESULT["stdout"])
            with self.assertRaises(GkexecError) as cm:
                self.client(stub).execute_stream("1")
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
        self.assertEqual(len(stub.requests), 3)

    def test_an_answer_that_breaks_off_raises(self):
        for name, answer in {
            "ended without its last line": support.Answer(parts=(support.output_line("stdout", b"half"),)),
            "connection dropped": support.Answer(parts=(support.output_line("stdout", b"half"),), complete=False),
            "a line that is not JSON": support.Answer(parts=(support.output_line("stdout", b"half"), b"{not json\n")),
        }.items():
            with self.subTest(name), support.StubServer(answer) as stub:
                answer.headers["X-Gkexec-Execution-Id"] = "cut-1"
                chunks = []
                with self.assertRaises(GkexecError) as cm:
                    with self.client(stub).execute_stream("1") as run:
                        for chunk in run:
                            chunks.append(chunk.data)
                self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.execution_id), (0, "incomplete_stream", "cut-1"))
                self.assertEqual(chunks, [b"half"], "what came before the break is delivered")

    def test_leaving_early_hangs_up(self):
        got_first = threading.Event()
        answer = support.Answer(wait_seconds=10, parts=(support.output_line("stdout", b"first"), got_first, support.UNTIL_HUNG_UP))
        with support.StubServer(answer) as stub:
            with self.client(stub).execute_stream("1") as run:
                self.assertEqual(next(run).data, b"first")
                got_first.set()
        self.assertTrue(answer.hung_up, "the connection stayed open after the with block")
        self.assertIsNone(run.result)

    def test_lines_of_unknown_types_are_skipped(self):
        answer = support.Answer(parts=(b'{"type":"progress","percent":50}\n', support.output_line("stdout", b"x"), support.result_line(RESULT)))
        with support.StubServer(answer) as stub:
            with self.client(stub).execute_stream("1") as run:
                self.assertEqual([c.data for c in run], [b"x"])
        self.assertIsNotNone(run.result)

    def test_a_server_that_does_not_stream(self):
        with support.StubServer(support.json_answer(200, RESULT)) as stub:
            with self.client(stub).execute_stream("1") as run:
                chunks = [(c.stream, c.text) for c in run]
        self.assertEqual(chunks, [("stdout", "one\ntwo ✓\n"), ("stderr", "warn\n")], "each stream whole")
        self.assertEqual(run.result.exit_code, 0)


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

    def test_stream_delivers_output_while_the_code_runs(self):
        # A cold sandbox's log can be followed only once the kubelet reports its container started
        # (it looks once a second, later on a busy node), so the first line may come a second after
        # it was printed: the code sleeps 3 s, and the line must come 1.5 s before the end.
        code = ("import sys, time\nprint('first', flush=True)\nprint('note', file=sys.stderr, flush=True)\n"
                "time.sleep(3)\nsys.stdout.buffer.write(b'\\xe2\\x9c\\x93 \\xff\\n')")
        chunks, arrived = [], []
        with self.client.execute_stream(code) as run:
            for chunk in run:
                chunks.append(chunk)
                arrived.append(time.monotonic())
        done = time.monotonic()
        r = run.result
        self.assertEqual((r.outcome, r.stdout_bytes, r.stderr), ("success", b"first\n\xe2\x9c\x93 \xff\n", "note\n"))
        self.assertEqual(b"".join(c.data for c in chunks if c.stream == "stdout"), r.stdout_bytes)
        self.assertEqual("".join(c.text for c in chunks if c.stream == "stderr"), "note\n")
        # Chunks need not be whole lines (a warm sandbox's attach stream may split print's newline).
        self.assertTrue(next(c.text for c in chunks if c.stream == "stdout").startswith("first"))
        self.assertGreater(done - arrived[0], 1.5, "the first line came only with the end, not while the code slept")

    def test_stream_error_before_output_raises_from_the_call(self):
        with self.assertRaises(GkexecError) as cm:
            GkexecClient(base_url=support.URL, token="wrong").execute_stream("print(1)")
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))

    def test_unreachable(self):
        with self.assertRaises(GkexecError) as cm:
            GkexecClient(base_url=support.closed_port_url(), timeout_seconds=5).execute("print(1)")
        self.assertEqual((cm.exception.status, cm.exception.code), (0, "unreachable"))


if __name__ == "__main__":
    unittest.main()
