"""Fuzzing the policy loader: a file either loads, or raises PolicyError naming file:line.

Never another exception and never a hang: loads run in a worker process that is killed
and replaced when one takes over ``LOAD_TIMEOUT`` seconds. Every valid document loads.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given

from tests.fuzz import budget, policies, policy_worker
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.findings import Findings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: A load of a file this small that takes longer is a hang.
LOAD_TIMEOUT = 5.0


@dataclass
class Worker:
    process: BaseProcess
    conn: Connection

    def load(self, path: Path) -> tuple[Any, ...] | None:
        """The worker's answer, or None if it gave none within LOAD_TIMEOUT."""
        self.conn.send(str(path))
        if not self.conn.poll(LOAD_TIMEOUT):
            return None
        answer: tuple[Any, ...] = self.conn.recv()
        return answer

    def stop(self) -> None:
        self.conn.close()
        self.process.kill()
        self.process.join()


def _start() -> Worker:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=policy_worker.serve, args=(child,), daemon=True)
    process.start()
    child.close()
    return Worker(process, parent)


def _explicit(test: Any) -> Any:
    for file in reversed(policies.EXPLICIT):
        test = example(file=file)(test)
    return test


@pytest.fixture
def worker() -> Iterator[list[Worker]]:
    holder = [_start()]
    yield holder
    holder[0].stop()


def test_policy_files(tmp_path: Path, worker: list[Worker]) -> None:
    path = tmp_path / "fuzz.yaml"
    located = re.compile(rf"^{re.escape(str(path))}:[1-9][0-9]*:[0-9]+: ")
    findings = Findings()
    cases = 0
    hung: set[bytes] = set()

    @_explicit
    @fuzz_settings(budget.policy_examples())
    @given(file=policies.files)
    def run(file: policies.PolicyFile) -> None:
        nonlocal cases
        if file.data in hung:  # known already; each costs LOAD_TIMEOUT
            return
        path.write_bytes(file.data)
        answer = worker[0].load(path)
        cases += 1
        request = repr(file)
        if answer is None:
            findings.add("policy load hangs", request, None, f"no result in {LOAD_TIMEOUT}s")
            hung.add(file.data)
            worker[0].stop()
            worker[0] = _start()
            return
        if answer[0] == "loaded":
            return
        _, kind, is_policy_error, errors = answer
        if not is_policy_error:
            findings.add(f"load raised {kind}", request, None, errors[0])
        elif file.valid:
            findings.add("a valid file was refused", request, None, errors)
        else:
            unlocated = [e for e in errors if not located.match(e)]
            if unlocated:
                shown = unlocated[0].replace(str(path), "<file>")
                kind = ":".join(shown.split(":", 2)[:2])  # "<file>: cannot read"
                findings.add(
                    f"an error without file:line ({kind})", request, None, shown, by_body=False
                )

    run()
    assert not findings.seen, findings.report()
    assert cases >= budget.policy_examples()
