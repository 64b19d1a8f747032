"""Stand-in for google.adk.code_executors.code_execution_utils: the three dataclasses' shapes."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class File:
    name: str
    content: str | bytes
    mime_type: str = "text/plain"


@dataclasses.dataclass
class CodeExecutionInput:
    code: str
    input_files: list[File] = dataclasses.field(default_factory=list)
    execution_id: Optional[str] = None


@dataclasses.dataclass
class CodeExecutionResult:
    stdout: str = ""
    stderr: str = ""
    output_files: list[File] = dataclasses.field(default_factory=list)
