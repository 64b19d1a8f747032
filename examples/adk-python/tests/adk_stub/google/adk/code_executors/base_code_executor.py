"""Stand-in for google.adk.code_executors.base_code_executor.

ADK's BaseCodeExecutor is a pydantic model; this stand-in does what the subclass relies on: class
attributes with defaults become instance fields set from keyword arguments (unknown keywords are
ignored, as pydantic does by default), and names starting with _ are private.
"""

from __future__ import annotations

import abc


class BaseCodeExecutor(abc.ABC):
    optimize_data_file: bool = False
    stateful: bool = False
    error_retry_attempts: int = 2
    code_block_delimiters: list = [("```tool_code\n", "\n```"), ("```python\n", "\n```")]
    execution_result_delimiters: tuple = ("```tool_output\n", "\n```")

    def __init__(self, **data):
        fields = {}
        for klass in reversed(type(self).__mro__):
            for name in getattr(klass, "__annotations__", {}):
                if not name.startswith("_"):
                    fields[name] = getattr(klass, name, None)
        for name, default in fields.items():
            setattr(self, name, data.get(name, default))

    @abc.abstractmethod
    def execute_code(self, invocation_context, code_execution_input):
        """Executes code and returns the code execution result."""
