"""The Kubernetes emulator served from a thread of its own, for tests whose service runs
in another process (the emulator is async; the test code around it is not)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from tests.support.kube_emulator import KubeEmulator

T = TypeVar("T")


class ThreadedEmulator:
    def __init__(self, handler: KubeEmulator, loop: asyncio.AbstractEventLoop) -> None:
        self.handler = handler
        self.loop = loop

    @property
    def url(self) -> str:
        return str(self.handler.url).rstrip("/")

    def call(self, func: Callable[[KubeEmulator], T]) -> T:
        """Run ``func(emulator)`` on the emulator's loop (its objects are not thread-safe)."""

        async def run() -> T:
            return func(self.handler)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.call(lambda h: h.add(obj))

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.call(lambda h: h.read(kind, namespace, name))

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                    "users": [{"name": "conea", "user": {"token": "test-token"}}],
                    "contexts": [
                        {"name": "emulator", "context": {"cluster": "emulator", "user": "conea"}}
                    ],
                    "current-context": "emulator",
                }
            )
        )
        return path


@contextlib.contextmanager
def emulator() -> Iterator[ThreadedEmulator]:
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        stop = asyncio.Event()
        started["stop"] = stop
        try:
            async with KubeEmulator() as handler, kmock.Server(handler):
                started["handler"] = handler
                ready.set()
                await stop.wait()
        except BaseException as exc:
            started["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in started:
        raise RuntimeError("the Kubernetes emulator did not start") from started["error"]
    try:
        yield ThreadedEmulator(started["handler"], loop)
    finally:
        loop.call_soon_threadsafe(started["stop"].set)
        thread.join(30)
        loop.close()
