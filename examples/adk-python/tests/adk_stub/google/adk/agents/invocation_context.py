"""Stand-in for google.adk.agents.invocation_context (see ../../../README.md)."""


class InvocationContext:
    def __init__(self, invocation_id: str = "stub-invocation"):
        self.invocation_id = invocation_id
