"""Worker threads for blocking calls (the ``kubernetes`` client, the store's driver).

:func:`run` runs a blocking function in a worker thread, like :func:`asyncio.to_thread`
(the caller's context variables go with it), in asyncio's default pool, unless the
calling task chose a pool of its own with :func:`using`: the tasks it starts meanwhile
inherit the choice. The diagnostics run in a small pool of their own
(:mod:`monitor.engine.diagnosing`), so that their calls never queue in front of a step's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_pool: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "monitor.threads.pool", default=None
)


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread of the chosen pool (default: asyncio's)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool.get(), call)


@contextlib.contextmanager
def using(pool: Executor) -> Iterator[None]:
    """Within the block, :func:`run` uses ``pool`` (and so do the tasks started in it)."""
    token = _pool.set(pool)
    try:
        yield
    finally:
        _pool.reset(token)


def chosen() -> Executor | None:
    """The pool :func:`run` uses here (None: asyncio's default)."""
    return _pool.get()
