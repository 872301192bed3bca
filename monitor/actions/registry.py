"""The action registry: what a policy step may run, checked when it is registered.

An action is a class with a name, a pydantic model of its parameters, the RBAC rules it
needs (for Kubernetes actions) and a plan/apply(/revert) split::

    registry = Registry()

    @registry.register
    class Scale(Action[ScaleParams]):
        name = "kubernetes.scale"
        Params = ScaleParams
        rbac = (RbacRule(("apps",), ("deployments",), ("get", "patch")),)

        async def plan(self, params, ctx): ...      # reads live state, changes nothing
        async def apply(self, params, ctx, plan): ...  # re-reads, writes, returns an Outcome
        async def revert(self, params, ctx, state): ...  # undoes what apply recorded

``plan`` must never change anything: dry-run and ``conea-monitor explain`` show it.
``apply`` makes one try and raises :class:`~monitor.errors.TemporaryActionError` or
:class:`~monitor.errors.PermanentActionError`; :class:`monitor.actions.runner.ActionRunner`
owns the timeout of a try (``timeout``, or :meth:`Action.attempt_timeout`) and the retries
(:meth:`Action.retry_policy`, or the runner's). An action whose ``reads_history`` is true
is given the earlier steps of its alert's ladder in ``ActionContext.history``, one
whose ``reads_evidence`` is true what the ladder's diagnostics found, newest first, in
``ActionContext.evidence``. The
registry is per instance, never a class-level global, so tests build their own.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.actions.retries import RetryPolicy
from monitor.alerts.context import AlertContext

P = TypeVar("P", bound=BaseModel)
StepStatus = Literal["planned", "rehearsed", "succeeded", "failed", "skipped", "reverted"]
Verification = Literal["pending", "recovered", "not_recovered", "error"]


class StrictModel(BaseModel):
    """Base for action parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class RbacRule:
    """One Kubernetes RBAC rule an action needs (as in a Role's ``rules``)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]


class Change(BaseModel):
    """One field an action would change (plan) or did change (outcome)."""

    resource: str
    field: str
    before: Any = None
    after: Any = None


class Plan(BaseModel):
    """What an action would do, read from live state, before it does anything."""

    action: str
    summary: str
    changes: list[Change] = []
    noop: bool = False
    details: dict[str, Any] = {}


class Outcome(BaseModel):
    """What an action did. ``revert_state`` is what ``revert`` needs to undo it."""

    summary: str
    changes: list[Change] = []
    details: dict[str, Any] = {}
    revert_state: dict[str, Any] | None = None


class HistoryEntry(StrictModel):
    """One step the engine ran for this alert and policy, oldest first."""

    step: int = Field(ge=1)  # as people read it: 1 is the policy's first step
    action: str
    status: StepStatus
    summary: str = ""  # the plan's summary
    changes: list[Change] = []
    result: str | None = None  # the outcome's summary, or the error
    verification: Verification | None = None
    verification_detail: str | None = None
    at: datetime | None = None
    execution_id: str | None = None


@dataclass(frozen=True)
class EvidenceLine:
    """What one diagnostic found, short enough for a page (``ActionContext.evidence``)."""

    name: str
    outcome: str  # ok | failed | timed_out
    summary: str  # one line
    excerpt: tuple[str, ...] = ()  # a few short lines: top events, log lines, table rows


@dataclass
class Services:
    """Clients the actions use, built once by the app (tests pass their own)."""

    kube: Any = None
    http: Any = None
    postgres: Mapping[str, Any] = field(default_factory=dict)
    prometheus: Any = None
    notifiers: Mapping[str, Any] = field(default_factory=dict)
    public_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ActionContext:
    """Everything an action may look at besides its parameters."""

    alert: AlertContext | None
    target: Mapping[str, str]
    services: Services
    policy: str = ""
    step: int = 0  # the step's index in the policy (0: the first); people read step + 1
    execution_id: str | None = None
    dry_run: bool = False
    history: tuple[HistoryEntry, ...] = ()  # for actions whose reads_history is true
    evidence: tuple[EvidenceLine, ...] = ()  # for actions whose reads_evidence is true
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("monitor.actions"))


class Action(Generic[P]):
    """Base class of actions; see the module docstring."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    rbac: ClassVar[tuple[RbacRule, ...]] = ()
    revertible: ClassVar[bool] = False
    timeout: ClassVar[float] = 60.0  # seconds one try (plan, apply or revert) may take
    reads_history: ClassVar[bool] = False  # the engine fills ActionContext.history
    reads_evidence: ClassVar[bool] = False  # the engine fills ActionContext.evidence
    # A read-only action a policy's ``diagnose:`` runs (never a step; only these there):
    # its Outcome's details hold the evidence (monitor.actions.diagnose).
    diagnostic: ClassVar[bool] = False

    def attempt_timeout(self, params: P, ctx: ActionContext) -> float:
        """Seconds one try may take with these parameters (default: ``timeout``)."""
        return self.timeout

    def retry_policy(self, params: P, ctx: ActionContext) -> RetryPolicy | None:
        """How to retry with these parameters; None: the runner's policy."""
        return None

    async def plan(self, params: P, ctx: ActionContext) -> Plan:
        raise NotImplementedError

    async def apply(self, params: P, ctx: ActionContext, plan: Plan) -> Outcome:
        raise NotImplementedError

    async def revert(self, params: P, ctx: ActionContext, state: dict[str, Any]) -> Outcome:
        raise NotImplementedError(f"action {self.name!r} cannot be reverted")


class Registry:
    """Actions by name. ``register`` checks an action before accepting it."""

    def __init__(self) -> None:
        self._actions: dict[str, Action[Any]] = {}

    def register(self, cls: type[Action[Any]]) -> type[Action[Any]]:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"action class {cls.__qualname__} has no name")
        if name in self._actions:
            raise TypeError(f"action {name!r} is registered twice")
        params = getattr(cls, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"action {name!r}: Params must be a pydantic model")
        if params.model_config.get("extra") != "forbid":
            raise TypeError(f"action {name!r}: Params must forbid unknown keys")
        for method in ("plan", "apply"):
            if getattr(cls, method) is getattr(Action, method):
                raise TypeError(f"action {name!r} does not implement {method}()")
            if not inspect.iscoroutinefunction(getattr(cls, method)):
                raise TypeError(f"action {name!r}: {method}() must be async")
        if cls.revertible and cls.revert is Action.revert:
            raise TypeError(f"action {name!r} says it is revertible but has no revert()")
        if cls.diagnostic and cls.revertible:
            raise TypeError(f"action {name!r} is a diagnostic: it cannot be revertible")
        if not (isinstance(cls.timeout, int | float) and 0 < cls.timeout <= 86_400):
            raise TypeError(f"action {name!r}: timeout must be a number of seconds in (0, 86400]")
        for rule in cls.rbac:
            if not isinstance(rule, RbacRule):
                raise TypeError(f"action {name!r}: rbac entries must be RbacRule")
        self._actions[name] = cls()
        return cls

    def get(self, name: str) -> Action[Any]:
        try:
            return self._actions[name]
        except KeyError:
            known = ", ".join(sorted(self._actions)) or "none"
            raise KeyError(f"unknown action {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._actions))

    def parse_params(self, name: str, raw: Mapping[str, Any]) -> BaseModel:
        """Validate an action's parameters; raises pydantic's ValidationError."""
        return self.get(name).Params.model_validate(dict(raw))
