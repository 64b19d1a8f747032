"""GkexecCodeExecutor against a real `gkexec serve`, through ADK's types (or their stand-in)."""

import base64
import unittest

import support
from gkexec_client import GkexecError
from gkexec_code_executor import GkexecCodeExecutor
from google.adk.agents.invocation_context import InvocationContext
from google.adk.code_executors.code_execution_utils import CodeExecutionInput, File


class ExecutorTest(unittest.TestCase):
    def setUp(self):
        support.require_server(self)
        self.ctx = InvocationContext()

    def executor(self, **kwargs) -> GkexecCodeExecutor:
        kwargs.setdefault("base_url", support.URL)
        kwargs.setdefault("token", support.TOKEN)
        return GkexecCodeExecutor(**kwargs)

    def test_maps_onto_code_execution_result(self):
        ex = self.executor(namespace=support.NAMESPACE, timeout_seconds=int(support.TIMEOUT_SECONDS))
        code = ("import csv, json\nrows = list(csv.reader(open('data.csv')))\nprint(len(rows))\n"
                "json.dump({'rows': rows}, open('output/rows.json', 'w'))\nopen('output/raw.bin', 'wb').write(open('raw.bin', 'rb').read())")
        inputs = [File(name="data.csv", content=base64.b64encode(b"a,b\n1,2\n").decode(), mime_type="text/csv"),
                  File(name="raw.bin", content=b"\x00\xff")]
        r = ex.execute_code(self.ctx, CodeExecutionInput(code=code, input_files=inputs))
        self.assertEqual(r.stdout, "2\n")
        self.assertEqual(r.stderr, "")
        by_name = {f.name: f for f in r.output_files}
        self.assertEqual(sorted(by_name), ["raw.bin", "rows.json"])
        self.assertEqual(by_name["rows.json"].mime_type, "application/json")
        self.assertEqual(base64.b64decode(by_name["rows.json"].content), b'{"rows": [["a", "b"], ["1", "2"]]}')
        self.assertEqual(base64.b64decode(by_name["raw.bin"].content), b"\x00\xff")

    def test_bash_runs_in_the_sandbox(self):
        # The sandbox image has bash (python:3.11-slim does); node it need not have.
        ex = self.executor(language="bash")
        self.assertIn("bash", ex.verify()["languages"])
        r = ex.execute_code(self.ctx, CodeExecutionInput(
            code='read n < n.txt; echo $((n + 1)); echo "bash $n" > output/lang.txt',
            input_files=[File(name="n.txt", content=b"41\n")]))
        self.assertEqual((r.stdout, r.stderr), ("42\n", ""))
        self.assertEqual([(f.name, base64.b64decode(f.content)) for f in r.output_files], [("lang.txt", b"bash 41\n")])

    def test_errors_the_model_can_fix_are_stderr(self):
        ex = self.executor()
        r = ex.execute_code(self.ctx, CodeExecutionInput(code="import nosuchmodule"))
        self.assertIn("ModuleNotFoundError", r.stderr)
        r = ex.execute_code(self.ctx, CodeExecutionInput(code="print(1)", input_files=[File(name="../x", content=b"")]))
        self.assertIn("was not run", r.stderr)

    def test_sandbox_parameters_are_checked_against_the_sidecar(self):
        cfg = self.executor(namespace=support.NAMESPACE, cpu_limit="500m", mem_limit="512Mi").verify()
        self.assertEqual(cfg["namespace"], support.NAMESPACE)
        ex = self.executor(namespace="somewhere-else", mem_limit="1Gi")
        with self.assertRaises(ValueError) as cm:
            ex.execute_code(self.ctx, CodeExecutionInput(code="print(1)"))
        self.assertIn("--namespace", str(cm.exception))
        self.assertIn("--memory-limit", str(cm.exception))

    def test_kubeconfig_does_not_apply(self):
        with self.assertRaises(ValueError):
            self.executor(kubeconfig_path="/root/.kube/config")

    def test_infrastructure_failures_raise_unless_asked_otherwise(self):
        url = support.closed_port_url()
        with self.assertRaises(GkexecError):
            self.executor(base_url=url, max_retries=0).execute_code(self.ctx, CodeExecutionInput(code="print(1)"))
        r = self.executor(base_url=url, max_retries=0, errors_as_stderr=True).execute_code(self.ctx, CodeExecutionInput(code="print(1)"))
        self.assertIn("unreachable", r.stderr)


if __name__ == "__main__":
    unittest.main()
