"""The shape of a remediation policy file, as strict pydantic models.

These models check types and keys only. What needs more than one field or more than one
file (matchers, templates, action names and parameters, time interval names, duplicate
names, severity rules) is checked when the policies are compiled (:mod:`.loader`), so
every error can still name its file, line and field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from monitor import durations
from monitor.policy import matchers, templating
from monitor.policy.timeintervals import NamedTimeInterval

Duration = durations.Duration


def _duration_field(default: str, description: str) -> Any:
    """A duration field whose default the schema shows as written (``5m``)."""
    return Field(
        durations.parse(default), description=description, json_schema_extra={"default": default}
    )


def _check_matcher(text: str) -> str:
    if not matchers.parse(text):
        raise ValueError(f"no matcher in {text!r}")
    return text


MatcherText = Annotated[str, AfterValidator(_check_matcher)]
TemplateText = Annotated[str, AfterValidator(templating.check)]
PromQLTemplate = Annotated[str, AfterValidator(templating.check_promql)]
Severity = Literal["critical", "high", "medium", "low"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

#: What a severity means when the policy does not say otherwise (the operations
#: manual's ladder): critical acts at once, high once the alert has fired 30 minutes,
#: medium in business hours only, low only records (``log``).
SEVERITY_FOR_AT_LEAST = {
    "critical": timedelta(0),
    "high": timedelta(minutes=30),
    "medium": timedelta(0),
    "low": timedelta(0),
}
SEVERITY_ACTIVE_TIME_INTERVALS = {"medium": ["business-hours"]}
RECORD_ONLY_ACTIONS = frozenset({"log"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


MAX_ACTION_TIMEOUT = timedelta(hours=1)
MAX_ACTION_RETRIES = 10


class ActionSpec(Strict):
    """One action of a step: a registry name, its parameters (strings may be templates),
    and optionally how long one try may take and how often to try again."""

    action: str = Field(pattern=NAME_PATTERN, description="registry name, e.g. kubernetes.scale")
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="parameters; strings may be templates"
    )
    timeout: Duration | None = Field(
        None, description="one try may take this long (default: the action's own), at most 1h"
    )
    retries: int | None = Field(
        None,
        ge=0,
        le=MAX_ACTION_RETRIES,
        description="tries after the first on a temporary failure (default: the action's own)",
    )

    @field_validator("timeout")
    @classmethod
    def _timeout_bounds(cls, value: timedelta | None) -> timedelta | None:
        if value is None:
            return value
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        if value > MAX_ACTION_TIMEOUT:
            limit = durations.format(MAX_ACTION_TIMEOUT)
            raise ValueError(
                f"{durations.format(value)} is longer than {limit}, the most a try may take"
            )
        return value


MAX_DIAGNOSTICS = 10
DEFAULT_DIAGNOSTIC_TIMEOUT = timedelta(seconds=10)
MAX_DIAGNOSTIC_TIMEOUT = timedelta(seconds=60)


class DiagnosticSpec(Strict):
    """One diagnostic of ``diagnose:``: a read-only action whose result is kept with the
    execution as evidence (when the policy matches, and after a failed verification)."""

    action: str = Field(pattern=NAME_PATTERN, description="e.g. kubernetes.logs")
    name: str | None = Field(
        None, pattern=NAME_PATTERN, description="what the evidence is called (default: action)"
    )
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="parameters; strings may be templates"
    )
    timeout: Duration = _duration_field("10s", "it may take this long, at most 60s")

    @field_validator("timeout")
    @classmethod
    def _timeout_bounds(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        if value > MAX_DIAGNOSTIC_TIMEOUT:
            limit = durations.format(MAX_DIAGNOSTIC_TIMEOUT)
            raise ValueError(
                f"{durations.format(value)} is longer than {limit}, the most a diagnostic may take"
            )
        return value

    @property
    def label(self) -> str:
        """The evidence's name: ``name``, else the action's."""
        return self.name or self.action


class Budget(Strict):
    attempts: int = Field(3, ge=1, description="at most this many executions per target")
    window: Duration = _duration_field("1h", "...per this window")


class Verify(Strict):
    promql: PromQLTemplate | None = Field(
        None,
        description="recovered when this (templated) PromQL returns no series; "
        "default: the alert itself is no longer firing. Every {{ ... }} is escaped as the "
        "contents of a PromQL string literal ('| raw' inserts a value as it is)",
    )
    window: Duration = _duration_field("5m", "wait this long, then judge")
    interval: Duration = _duration_field("30s", "evaluate this often")


class Revert(Strict):
    enabled: bool = Field(False, description="undo revertible actions once the alert resolves")
    after: Duration = _duration_field("5m", "stabilisation delay")


def _step_has_actions(step: list[ActionSpec]) -> list[ActionSpec]:
    if not step:
        raise ValueError("a step needs at least one action")
    return step


Step = Annotated[list[ActionSpec], AfterValidator(_step_has_actions)]


Approval = Literal["required", "none"]


class StepSpec(Strict):
    """A step written as a mapping: its actions and the step's own settings."""

    actions: Step = Field(description="the step's actions, in order")
    dry_run: bool = Field(
        False, description="rehearse this step (plan and record it, apply nothing)"
    )
    approval: Approval | None = Field(
        None, description="required: a person approves this step before it acts"
    )


STEP_FORMS = ("step-list", "step-mapping")
"""The tags pydantic puts in an error's location for the two ways to write a step (the
loader leaves them out of the field path it reports)."""


def _step_form(value: Any) -> str:
    return STEP_FORMS[1] if isinstance(value, dict | StepSpec) else STEP_FORMS[0]


AnyStep = Annotated[
    Annotated[Step, Tag(STEP_FORMS[0])] | Annotated[StepSpec, Tag(STEP_FORMS[1])],
    Discriminator(_step_form),
]


class PolicySpec(Strict):
    """One remediation policy."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    severity: Severity | None = Field(None, description="sets defaults, see docs/policy.md")
    match: list[MatcherText] = Field(
        min_length=1, description='Alertmanager matchers, all must match: alertname="X"'
    )
    target: dict[str, TemplateText] = Field(
        description="kind, namespace, name (templated): what the actions act on; "
        "resolve: owner acts on the workload controlling a Pod, ReplicaSet or Job"
    )
    steps: list[AnyStep] = Field(
        min_length=1,
        description="the escalation ladder: each step a list of actions, or a mapping "
        "with 'actions' and the step's own 'dry_run'",
    )
    for_at_least: Duration | None = Field(
        None, description="act only once the alert has fired this long"
    )
    cooldown: Duration = _duration_field("5m", "per target, after an action")
    budget: Budget = Budget()
    dry_run: bool = Field(False, description="rehearse every step of this policy")
    approval: Approval | None = Field(
        None,
        description="required: a person approves each step before it acts; none: never "
        "asked, even in approval mode",
    )
    active_time_intervals: list[str] | None = Field(
        None, description="act only inside one of these named time intervals"
    )
    inactive_time_intervals: list[str] = Field(
        default_factory=list, description="never act inside these (maintenance windows)"
    )
    verify: Verify = Verify()
    revert: Revert = Revert()
    diagnose: list[DiagnosticSpec] = Field(
        default_factory=list,
        max_length=MAX_DIAGNOSTICS,
        description="read-only actions gathering evidence when the policy matches and "
        "after a failed verification (at most 10)",
    )

    @field_validator("target")
    @classmethod
    def _target_names_kind_and_name(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [key for key in ("kind", "name") if key not in value]
        if missing:
            raise ValueError(f"target needs {' and '.join(missing)}")
        if value.get("resolve", "owner") != "owner":
            raise ValueError(f"resolve: {value['resolve']!r} is not known (resolve: owner)")
        return value

    def step_actions(self, step: int) -> list[ActionSpec]:
        item = self.steps[step]
        return item.actions if isinstance(item, StepSpec) else item

    def step_approval(self, step: int) -> Approval | None:
        """The step's own ``approval``, else the policy's (None: the mode decides)."""
        item = self.steps[step]
        own = item.approval if isinstance(item, StepSpec) else None
        return own if own is not None else self.approval

    def step_rehearsed(self, step: int) -> bool:
        item = self.steps[step]
        return self.dry_run or (isinstance(item, StepSpec) and item.dry_run)

    def effective_for_at_least(self) -> timedelta:
        if self.for_at_least is not None:
            return self.for_at_least
        return SEVERITY_FOR_AT_LEAST.get(self.severity or "", timedelta(0))

    def effective_active_time_intervals(self) -> list[str]:
        if self.active_time_intervals is not None:
            return self.active_time_intervals
        return SEVERITY_ACTIVE_TIME_INTERVALS.get(self.severity or "", [])


class FileShape(Strict):
    """The top level of a file; each entry is then checked on its own."""

    time_intervals: list[Any] = Field(default_factory=list)
    policies: list[Any] = Field(default_factory=list)


class PolicyFile(Strict):
    """A file under ``remediations/``: named time intervals and policies."""

    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    policies: list[PolicySpec] = Field(default_factory=list)
