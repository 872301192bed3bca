"""The ``log`` action: records a line and changes nothing (tests, dry-run, low severity)."""

from __future__ import annotations

from monitor.actions.registry import Action, ActionContext, Outcome, Plan, Registry, StrictModel


class LogParams(StrictModel):
    message: str = "remediation requested"
    level: str = "info"


class Log(Action[LogParams]):
    name = "log"
    Params = LogParams

    async def plan(self, params: LogParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"log {params.message!r}", noop=False)

    async def apply(self, params: LogParams, ctx: ActionContext, plan: Plan) -> Outcome:
        level = getattr(ctx.log, params.level.lower(), ctx.log.info)
        level("%s (policy=%s target=%s)", params.message, ctx.policy, dict(ctx.target))
        return Outcome(summary=f"logged {params.message!r}")


def register(registry: Registry) -> None:
    registry.register(Log)
