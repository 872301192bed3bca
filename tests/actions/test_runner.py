"""The action runner: retries, the deadline, the try's timeout, slots and the lease."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from monitor.actions import registry
from monitor.actions import runner as action_runner
from monitor.errors import PermanentActionError, TemporaryActionError
from tests.actions.conftest import Sleeps

RetryPolicy = action_runner.RetryPolicy


class ScriptParams(registry.StrictModel):
    pass


class Script(registry.Action[ScriptParams]):
    """An action whose tries play a script: an exception to raise, or an awaitable."""

    name = "test.script"
    Params = ScriptParams
    timeout = 5.0

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.tries = 0
        self.cancelled = 0
        self.during: Callable[[], None] | None = None
        self.policy: RetryPolicy | None = None

    def retry_policy(self, params: ScriptParams, ctx: registry.ActionContext) -> RetryPolicy | None:
        return self.policy

    async def _play(self) -> str:
        self.tries += 1
        if self.during is not None:
            self.during()
        step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, asyncio.Event):
            try:
                await step.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return f"try {self.tries}"

    async def plan(self, params: ScriptParams, ctx: registry.ActionContext) -> registry.Plan:
        return registry.Plan(action=self.name, summary=await self._play())

    async def apply(
        self, params: ScriptParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        return registry.Outcome(summary=await self._play())

    async def revert(
        self, params: ScriptParams, ctx: registry.ActionContext, state: dict[str, Any]
    ) -> registry.Outcome:
        return registry.Outcome(summary=f"reverted {state} on {await self._play()}")


CTX = registry.ActionContext(alert=None, target={}, services=registry.Services())
PARAMS = ScriptParams()


class Recorder:
    """``on_attempt`` and ``observe``: what the runner reported."""

    def __init__(self) -> None:
        self.reports: list[action_runner.AttemptReport] = []
        self.observed: list[str] = []

    async def on_attempt(self, report: action_runner.AttemptReport) -> None:
        self.reports.append(report)

    def observe(self, name: str, seconds: float) -> None:
        assert seconds >= 0
        self.observed.append(name)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


@pytest.fixture
def runner(sleeps: Sleeps, seen: Recorder) -> action_runner.ActionRunner:
    return action_runner.ActionRunner(sleep=sleeps, observe=seen.observe)


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_a_temporary_error_is_retried_after_the_backoff_or_its_delay(
    script: Script, runner: action_runner.ActionRunner, sleeps: Sleeps, seen: Recorder
) -> None:
    script.script = [
        TemporaryActionError("busy", delay=0.5),  # backoff 1s is longer: 1s
        TemporaryActionError("slow down", delay=5),  # its hint is longer than 2s: 5s
    ]
    outcome = await runner.apply(
        script, PARAMS, CTX, registry.Plan(action="x", summary="x"), on_attempt=seen.on_attempt
    )
    assert outcome.summary == "try 3"
    assert sleeps == [1.0, 5.0]
    assert [(r.number, r.phase, r.error, r.temporary, r.retry_in) for r in seen.reports] == [
        (1, "apply", "busy", True, 1.0),
        (2, "apply", "slow down", True, 5.0),
    ]
    assert seen.observed == ["test.script"] * 3  # the duration of every try


async def test_a_delay_hint_is_capped(
    script: Script, runner: action_runner.ActionRunner, sleeps: Sleeps
) -> None:
    script.script = [TemporaryActionError("later", delay=100)]
    assert (await runner.plan(script, PARAMS, CTX)).summary == "try 2"
    assert sleeps == [30.0]


async def test_a_permanent_error_is_tried_once(
    script: Script, runner: action_runner.ActionRunner, sleeps: Sleeps, seen: Recorder
) -> None:
    script.script = [PermanentActionError("not found")]
    with pytest.raises(PermanentActionError, match="not found"):
        await runner.plan(script, PARAMS, CTX, on_attempt=seen.on_attempt)
    assert script.tries == 1 and sleeps == []
    [report] = seen.reports
    assert (report.action, report.phase, report.temporary, report.retry_in) == (
        "test.script",
        "plan",
        False,
        None,
    )


async def test_any_other_exception_is_not_retried(
    script: Script, runner: action_runner.ActionRunner, sleeps: Sleeps, seen: Recorder
) -> None:
    script.script = [KeyError("replicas")]
    with pytest.raises(KeyError, match="replicas"):
        await runner.revert(script, PARAMS, CTX, {"replicas": 4}, on_attempt=seen.on_attempt)
    assert script.tries == 1 and sleeps == []
    assert seen.reports[0].error == "KeyError: 'replicas'"


async def test_the_last_temporary_error_is_raised_when_attempts_run_out(
    script: Script, runner: action_runner.ActionRunner, sleeps: Sleeps
) -> None:
    script.script = [TemporaryActionError(f"busy {n}", delay=0) for n in (1, 2, 3, 4)]
    with pytest.raises(TemporaryActionError, match="busy 3"):
        await runner.plan(script, PARAMS, CTX)
    assert script.tries == 3 and sleeps == [1.0, 2.0]


async def test_a_delay_hint_beyond_the_deadline_stops_at_once(
    script: Script, runner: action_runner.ActionRunner, sleeps: Sleeps, seen: Recorder
) -> None:
    script.script = [TemporaryActionError("come back in an hour", delay=3600)]
    policy = RetryPolicy(cap=7200, deadline=60)
    with pytest.raises(TemporaryActionError, match="come back in an hour") as info:
        await runner.plan(script, PARAMS, CTX, retry=policy, on_attempt=seen.on_attempt)
    assert script.tries == 1 and sleeps == []
    assert info.value.delay == 3600
    assert seen.reports[0].retry_in is None


async def test_the_deadline_counts_the_waits(script: Script) -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    runner = action_runner.ActionRunner(sleep=sleep, monotonic=lambda: now[0])
    script.script = [TemporaryActionError("busy", delay=0)] * 5
    policy = RetryPolicy(attempts=10, first=4, factor=2, deadline=10)
    with pytest.raises(TemporaryActionError):
        await runner.plan(script, PARAMS, CTX, retry=policy)
    assert waits == [4.0]  # the next wait (8s) would end past the 10s deadline
    assert script.tries == 2


async def test_a_hanging_action_times_out_and_leaves_nothing_behind(
    script: Script, sleeps: Sleeps, seen: Recorder
) -> None:
    slots = asyncio.Semaphore(1)
    runner = action_runner.ActionRunner(slots=slots, sleep=sleeps, observe=seen.observe)
    never = asyncio.Event()
    script.script = [never, never]
    with pytest.raises(action_runner.ActionTimeout, match=r"timed out after 0\.05s") as info:
        await runner.apply(
            script,
            PARAMS,
            CTX,
            registry.Plan(action="x", summary="x"),
            timeout=0.05,
            retry=RetryPolicy(attempts=2),
            on_attempt=seen.on_attempt,
        )
    assert isinstance(info.value, TemporaryActionError)
    assert (script.tries, script.cancelled) == (2, 2)  # each try was stopped
    assert [(r.temporary, r.retry_in) for r in seen.reports] == [(True, 1.0), (True, None)]
    assert not slots.locked()
    assert other_tasks() == set()


async def test_the_steps_timeout_wins_over_the_actions(
    script: Script, runner: action_runner.ActionRunner
) -> None:
    never = asyncio.Event()
    script.timeout = 0.02  # type: ignore[misc]  # the action's own, for this test
    script.script = [never]
    with pytest.raises(action_runner.ActionTimeout, match=r"plan: timed out after 0\.02s"):
        await runner.plan(script, PARAMS, CTX, retry=RetryPolicy(attempts=1))
    script.script = [never]
    with pytest.raises(action_runner.ActionTimeout, match=r"timed out after 0\.01s"):
        await runner.plan(script, PARAMS, CTX, timeout=0.01, retry=RetryPolicy(attempts=1))


async def test_the_retry_policy_comes_from_the_call_the_action_or_the_runner(
    script: Script, runner: action_runner.ActionRunner
) -> None:
    def failing() -> list[Any]:
        return [TemporaryActionError("busy", delay=0)] * 5

    script.script = failing()
    with pytest.raises(TemporaryActionError):
        await runner.plan(script, PARAMS, CTX)
    assert script.tries == 3  # the runner's: 3 attempts

    script.tries, script.script, script.policy = 0, failing(), RetryPolicy(attempts=2)
    with pytest.raises(TemporaryActionError):
        await runner.plan(script, PARAMS, CTX)
    assert script.tries == 2  # the action's

    script.tries, script.script = 0, failing()
    with pytest.raises(TemporaryActionError):
        await runner.plan(script, PARAMS, CTX, retry=RetryPolicy(attempts=1))
    assert script.tries == 1  # the call's (a policy step's retries)


async def test_the_slot_is_held_during_a_try_and_not_while_waiting(
    script: Script, seen: Recorder
) -> None:
    slots = asyncio.Semaphore(1)
    held_while: list[str] = []

    async def sleep(seconds: float) -> None:
        held_while.append(f"wait: {slots.locked()}")

    script.during = lambda: held_while.append(f"try: {slots.locked()}")
    runner = action_runner.ActionRunner(slots=slots, sleep=sleep)
    script.script = [TemporaryActionError("busy", delay=0)]
    await runner.plan(script, PARAMS, CTX)
    assert held_while == ["try: True", "wait: False", "try: True"]
    assert not slots.locked()


class Lease:
    interval = 0.01

    def __init__(self, answers: list[bool | Exception], enough: int = 3) -> None:
        self.answers = answers
        self.renewals = 0
        self.enough = enough
        self.renewed = asyncio.Event()  # set once renewed ``enough`` times

    async def renew(self) -> bool:
        self.renewals += 1
        if self.renewals >= self.enough:
            self.renewed.set()
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_lease_is_renewed_during_a_long_try(
    script: Script, runner: action_runner.ActionRunner
) -> None:
    lease = Lease([])
    script.script = [lease.renewed]  # the try lasts until the lock was renewed 3 times
    plan = await runner.plan(script, PARAMS, CTX, lease=lease)
    assert plan.summary == "try 1" and lease.renewals >= 3
    assert other_tasks() == set()  # the renewal task ended with the call


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([True, False], "lost the target's lock: another holder has it now"),
        ([ConnectionError("store down")], r"renewing it failed \(ConnectionError: store down\)"),
    ],
)
async def test_a_lost_lease_stops_the_run(
    script: Script,
    runner: action_runner.ActionRunner,
    answers: list[bool | Exception],
    message: str,
) -> None:
    slots = asyncio.Semaphore(1)
    runner.slots = slots
    lease = Lease(answers)
    script.script = [asyncio.Event()]  # never set: only the lost lease ends this try
    with pytest.raises(action_runner.LeaseLost, match=message) as info:
        await runner.apply(script, PARAMS, CTX, registry.Plan(action="x", summary="x"), lease=lease)
    assert isinstance(info.value, PermanentActionError)
    assert script.cancelled == 1 and not slots.locked()
    assert other_tasks() == set()


async def test_a_cancelled_run_leaves_no_renewal_behind(
    script: Script, runner: action_runner.ActionRunner
) -> None:
    started = asyncio.Event()
    script.during = started.set
    script.script = [asyncio.Event()]
    run = asyncio.create_task(runner.plan(script, PARAMS, CTX, lease=Lease([])))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert script.cancelled == 1
    assert other_tasks() == set()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attempts": 0}, "attempts must be at least 1"),
        ({"first": -1}, "first must be a finite number >= 0"),
        ({"cap": float("nan")}, "cap must be a finite number >= 0"),
        ({"factor": 0.5}, "factor must be a finite number >= 1"),
        ({"deadline": 0}, "deadline must be a finite number > 0"),
        ({"max_hint": float("inf")}, "max_hint must be a finite number >= 0"),
    ],
)
def test_a_bad_retry_policy_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**fields)


def test_a_long_hint_ends_the_run_when_the_policy_says_so() -> None:
    policy = RetryPolicy(attempts=5, first=1, cap=10, max_hint=30)
    assert [policy.wait(1, 0), policy.wait(2, 20), policy.wait(3, 31), policy.wait(5, 0)] == [
        1.0,
        10.0,  # a hint under max_hint is still capped at cap
        None,
        None,
    ]


def test_every_builtin_action_declares_a_timeout() -> None:
    from monitor.actions import default_registry

    reg = default_registry()
    timeouts = {name: reg.get(name).timeout for name in reg}
    assert timeouts["kubernetes.scale"] == 30.0 and timeouts["log"] == 60.0
    assert timeouts["postgres.vacuum_analyze"] == 1800.0
    assert all(0 < seconds <= 3600 for seconds in timeouts.values())


class NoTimeout(registry.Action[ScriptParams]):
    name = "test.no_timeout"
    Params = ScriptParams
    timeout: ClassVar[float] = 0

    async def plan(self, params: ScriptParams, ctx: registry.ActionContext) -> registry.Plan:
        raise NotImplementedError

    async def apply(
        self, params: ScriptParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        raise NotImplementedError


def test_an_action_without_a_usable_timeout_is_refused() -> None:
    with pytest.raises(TypeError, match="timeout must be a number of seconds"):
        registry.Registry().register(NoTimeout)
