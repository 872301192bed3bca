"""What a fuzz run found: each distinct failure once, with the first input that showed it.

A run does not stop at the first 5xx, so one report lists every distinct failure; a hang
(no answer within the request timeout) stops the run at once, since everything after it
would hang too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Hang(AssertionError):
    """The service did not answer within the request timeout."""


def _shape(text: str) -> str:
    text = re.sub(r"(0x|#x|\\x|\\u)[0-9a-fA-F]+", "X", text)
    return re.sub(r"\d+", "N", text)[:160]


@dataclass
class Findings:
    seen: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        what: str,
        request: str | Callable[[], str],
        status: int | None,
        body: Any,
        *,
        by_body: bool = True,
    ) -> None:
        """Record a failure unless one like it is known (same ``what``, status and, with
        ``by_body``, answer); ``request`` may be a function, called only if it is new."""
        key = f"{what}: {status} {_shape(str(body))}" if by_body else what
        if key not in self.seen:
            shown = request if isinstance(request, str) else request()
            self.seen[key] = f"{shown}\n    -> {status} {str(body)[:400]}"

    def report(self) -> str:
        lines = [f"{len(self.seen)} distinct failure(s):"]
        for key, example in self.seen.items():
            lines.append(f"- {key}\n    {example}")
        return "\n".join(lines)
