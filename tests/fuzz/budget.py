"""How many fuzz cases a run must send: the issue's numbers in CI, fewer on a laptop.

In CI (``CI`` set) a backend must see at least ``TARGETS[backend]`` cases and nothing can
lower that. Elsewhere ``CONEA_FUZZ_SCALE`` (default 0.1) scales the numbers, so a
developer run takes seconds; ``CONEA_FUZZ_SCALE=1`` runs what CI runs.
"""

from __future__ import annotations

import math
import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings

TARGETS = {"sqlite": 10_000, "postgres": 2_000}

#: Share of a backend's cases per part of the suite.
SHARES = {"webhook": 0.65, "query": 0.2, "admin": 0.15}

POLICY_CASES = 800


def scale() -> float:
    if os.environ.get("CI"):
        return 1.0
    try:
        value = float(os.environ.get("CONEA_FUZZ_SCALE", "0.1"))
    except ValueError:
        raise ValueError("CONEA_FUZZ_SCALE must be a number such as 0.1 or 1") from None
    return min(max(value, 0.001), 10.0)


def required(backend: str) -> int:
    """The cases a backend must have seen by the end of its run."""
    return math.ceil(TARGETS[backend] * scale())


def examples(backend: str, part: str) -> int:
    """``max_examples`` for one part; the parts add up to at least ``required``."""
    return math.ceil(TARGETS[backend] * SHARES[part] * scale())


def policy_examples() -> int:
    return math.ceil(POLICY_CASES * scale())


def fuzz_settings(max_examples: int) -> Any:
    """Reproducible (a fixed seed), no shrinking (a broken service makes it meaningless:
    the findings keep the first input instead), no health checks on big inputs."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
