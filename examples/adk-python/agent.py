"""An ADK for Python agent whose code runs in gkexec's gVisor sandbox, through a `gkexec serve` sidecar.

Laid out like ADK's samples (`root_agent`), so `adk run` and `adk web` find it. Needs google-adk and a
Gemini key (GOOGLE_API_KEY) where it runs; the sidecar needs the Kubernetes credentials, the agent none.
"""

import os

from google.adk.agents import LlmAgent

from gkexec_code_executor import GkexecCodeExecutor

root_agent = LlmAgent(
    name="gkexec_coding_agent",
    model=os.environ.get("AGENT_MODEL", "gemini-2.5-flash"),
    instruction=(
        "You are a helpful agent that writes and executes Python code to answer questions. "
        "Each program runs in a fresh sandbox without network access; print what you need. "
        "Files the program writes under /workspace/output come back as artifacts."
    ),
    code_executor=GkexecCodeExecutor(
        # Checked against the sidecar's flags on first use; leave out to accept whatever it runs.
        namespace=os.environ.get("GKEXEC_NAMESPACE") or None,
    ),
)
