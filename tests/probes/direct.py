"""Running one prober directly (no HTTP), for tests that inject what /probe cannot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from monitor.probes import config, context, output, probers, targets


@dataclass
class Ran:
    success: bool
    out: output.Recorder
    lines: list[str]

    @property
    def trace(self) -> str:
        return "\n".join(self.lines)

    def value(self, name: str, **labels: str) -> float:
        value = self.out.value(name, labels or None)
        assert value is not None, f"{name}{labels} was not recorded"
        return value

    def has(self, name: str) -> bool:
        return self.out.value(name) is not None


def module(text: str) -> config.Module:
    """The module ``m`` of a probes file whose ``modules:`` entry is ``text``."""
    return config.parse(f"modules:\n  m: {text}\n", "probes.yml").modules["m"]


def run(
    mod: config.Module,
    target: str,
    seconds: float = 5.0,
    prober: Callable[[context.Probe], Awaitable[bool]] | None = None,
) -> Ran:
    """Probe ``target`` with ``mod`` (by its registered prober unless one is given)."""

    async def go() -> Ran:
        _registry, recorder = output.new_registry()
        trace = output.Trace(True)
        p = context.Probe(
            target=targets.parse(mod.prober, target),
            module_name="m",
            module=mod,
            allow=config.Allow(),
            out=recorder,
            trace=trace,
            deadline=asyncio.get_running_loop().time() + seconds,
        )
        success = await (prober or probers.PROBERS[mod.prober])(p)
        return Ran(success, recorder, trace.lines)

    return asyncio.run(go())
