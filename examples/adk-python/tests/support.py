"""What the tests share: the modules under test on sys.path, and the server they run against.

The server-backed tests need a real `gkexec serve` on loopback, started by the Go test that drives
them (test/agent, `go test -tags integration ./test/...`), which passes:

  GKEXEC_TEST_URL              the server; it runs with --max-concurrent 1
  GKEXEC_TEST_TOKEN            its bearer token
  GKEXEC_TEST_NAMESPACE        its --namespace
  GKEXEC_TEST_TIMEOUT_SECONDS  its --timeout

Without them those tests are skipped (the Go driver fails on any skip).
"""

import os
import socket
import sys
import unittest

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
