"""``conea-monitor explain``: what the engine would do with a notification, without doing it.

For each alert: the policies that match, the step that applies, each guardrail's verdict
and each action's plan (read from live state; nothing is changed, nothing is claimed).
"""

from __future__ import annotations

from typing import Any

from monitor import policy as policy_mod
from monitor.actions.registry import ActionContext
from monitor.actions.runner import RetryPolicy
from monitor.alerts.context import alert_context
from monitor.alerts.payload import Notification
from monitor.engine import guardrails
from monitor.engine.core import Engine
from monitor.engine.executing import unplanned
from monitor.errors import MonitorError, NotConfigured


async def explain(engine: Engine, notification: Notification) -> list[dict[str, Any]]:
    report = []
    now = engine.clock.now()
    paused = await engine.is_paused()
    for alert in notification.alerts:
        ctx = alert_context(alert)
        entry: dict[str, Any] = {
            "alertname": alert.alertname,
            "fingerprint": alert.fingerprint,
            "status": alert.status,
            "labels": dict(alert.labels),
            "policies": [],
        }
        report.append(entry)
        matched = engine.policies.match(ctx.labels)
        if not matched:
            entry["note"] = "no policy matches this alert: it is only recorded"
        for policy in matched:
            item: dict[str, Any] = {"policy": policy.name}
            entry["policies"].append(item)
            if alert.status == "resolved":
                item["note"] = (
                    "resolved: pending deferrals are cancelled, pending "
                    "verifications count as recovered"
                    + (
                        f", reverts run after {policy.revert.after}"
                        if policy.revert.enabled
                        else ""
                    )
                )
                continue
            try:
                target = policy_mod.render_target(policy, ctx)
            except MonitorError as exc:
                item["error"] = str(exc)
                continue
            tkey = policy_mod.target_key(target)
            done = await engine.store.for_alert(ctx.fingerprint, ctx.starts_at, policy.name)
            step = 0
            if done:
                item["recorded"] = [f"step {r.step + 1}: {r.state}" for r in done]
                step = min(max(r.step for r in done) + 1, len(policy.steps) - 1)
            rehearsal = engine.parts.rehearsal(policy, step)
            asked = engine.parts.needs_approval(policy, step)
            mode = "rehearsal" if rehearsal else "approval" if asked else "live"
            item.update(target=tkey, step=step + 1, of_steps=len(policy.steps), mode=mode)
            history = await engine.store.target_history(
                tkey,
                now - policy.budget.window,
                (ctx.fingerprint, ctx.starts_at),
                rehearsal,
            )
            decision = guardrails.decide(
                policy,
                target=target,
                starts_at=ctx.starts_at,
                now=now,
                paused=paused,
                rehearsal=rehearsal,
                scope=engine.scope,
                history=history,
            )
            item["decision"] = decision.as_dict()
            item["plans"] = await _plans(engine, policy, ctx, step, target, rehearsal)
    return report


async def _plans(
    engine: Engine,
    policy: policy_mod.Policy,
    ctx: Any,
    step: int,
    target: dict[str, str],
    rehearsal: bool,
) -> list[dict[str, Any]]:
    """Each action's plan, made read-only now; a rehearsed action that cannot be planned
    against live state says what would run, as the engine records it."""
    plans = []
    for compiled in policy.steps[step]:
        try:
            action = engine.registry.get(compiled.action)
            params = policy_mod.parse_params(compiled, ctx, engine.registry)
            actx = ActionContext(
                alert=ctx,
                target=target,
                services=engine.services,
                policy=policy.name,
                step=step,
                dry_run=True,
                now=engine.clock.now,
            )
            # One try within the step's (or the action's) timeout: explain answers now.
            try:
                plan = await engine.runner.plan(
                    action, params, actx, timeout=compiled.timeout, retry=RetryPolicy(attempts=1)
                )
            except NotConfigured as exc:
                if not rehearsal:
                    raise
                written = params.model_dump(mode="json", exclude_unset=True)
                plan = unplanned(compiled.action, written, exc)
            plans.append(
                {
                    "action": compiled.action,
                    "plan": plan.summary,
                    "changes": [c.model_dump(mode="json") for c in plan.changes],
                }
            )
        except Exception as exc:  # a plan that cannot be made is part of the answer
            plans.append({"action": compiled.action, "error": f"{type(exc).__name__}: {exc}"})
    return plans


def render(report: list[dict[str, Any]]) -> str:
    """The report as text for a terminal."""
    lines = []
    for entry in report:
        lines.append(
            f"alert {entry['alertname']} [{entry['status']}] fingerprint {entry['fingerprint']}"
        )
        if entry.get("note"):
            lines.append(f"  {entry['note']}")
        for item in entry["policies"]:
            lines.append(f"  policy {item['policy']}")
            for key in ("note", "error"):
                if item.get(key):
                    lines.append(f"    {item[key]}")
            if "decision" not in item:
                continue
            lines.append(
                f"    target {item['target']}, step {item['step']} of {item['of_steps']} "
                f"({item['mode']})"
            )
            for recorded in item.get("recorded", []):
                lines.append(f"    already recorded: {recorded}")
            decision = item["decision"]
            for verdict in decision["verdicts"]:
                mark = "ok  " if verdict["passed"] else "STOP"
                lines.append(f"    [{mark}] {verdict['guardrail']}: {verdict['reason']}")
            lines.append(
                f"    => {decision['outcome']}"
                + (f" until {decision['due_at']}" if decision["due_at"] else "")
            )
            for plan in item["plans"]:
                text = plan.get("plan") or f"cannot plan: {plan.get('error')}"
                lines.append(f"    plan {plan['action']}: {text}")
    return "\n".join(lines)
