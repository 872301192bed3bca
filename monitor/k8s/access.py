"""Does the cluster grant what the policies need? ``SelfSubjectAccessReview`` per need.

A :class:`Need` is one (verb, API group, resource, namespace) an action declares
(:mod:`monitor.actions.rbac`); :func:`review` asks the API server about each, a few at a
time and within a total time, and answers ``allowed``, ``denied`` or ``unknown`` (the
review failed or ran out of time: never taken for a denial). :func:`check` does it for
several policies at once, asking each distinct need once, and returns what is not
allowed, per policy::

    policy 'restart-api' needs patch deployments.apps in production: denied

The namespaces to ask about are :func:`namespaces`: the policy's target namespace when it
is literal, else the namespaces the scope allows by name, else the release namespace.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from monitor import errors
from monitor import scope as scope_mod
from monitor.k8s import client as k8s_client

Answer = Literal["allowed", "denied", "unknown"]

CONCURRENCY = 4
"""Reviews in flight at once."""
WITHIN = 10.0
"""Seconds all the reviews of one check may take; those unanswered by then are unknown."""
MAX_NEEDS = 1000
"""Reviews one check makes at most; the others are unknown (a runaway namespace list)."""

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, order=True)
class Need:
    verb: str
    group: str  # "" for the core group
    resource: str  # "deployments", "deployments/scale"
    namespace: str  # "" for every namespace (a ClusterRole's grant)

    def __str__(self) -> str:
        plural, slash, sub = self.resource.partition("/")
        what = f"{plural}.{self.group}{slash}{sub}" if self.group else self.resource
        where = f"in {self.namespace}" if self.namespace else "in every namespace"
        return f"{self.verb} {what} {where}"


@dataclass(frozen=True)
class Finding:
    """A need of a policy that is not known to be granted."""

    policy: str
    need: Need
    answer: Answer
    detail: str = ""

    def __str__(self) -> str:
        why = f" ({self.detail})" if self.detail else ""
        return f"policy {self.policy!r} needs {self.need}: {self.answer}{why}"


def release_namespace() -> str:
    """The namespace the service runs in: ``$POD_NAMESPACE``, the service account's, or
    ``default``."""
    named = os.environ.get("POD_NAMESPACE", "").strip()
    if named:
        return named
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def namespaces(target_namespace: str, scope: scope_mod.Scope, release: str) -> list[str]:
    """Where a policy acts: its target namespace when literal; else the namespaces the
    scope allows by name plus ``""`` (every namespace) when it allows by pattern; else
    ``release``."""
    if target_namespace and "{" not in target_namespace:
        return [target_namespace]
    names = sorted({n for n in scope.allow if not scope_mod.is_pattern(n)})
    if any(scope_mod.is_pattern(n) for n in scope.allow):
        names.append("")
    return names or [release]


async def review(
    kube: k8s_client.Kube,
    needs: Iterable[Need],
    *,
    concurrency: int = CONCURRENCY,
    within: float = WITHIN,
) -> dict[Need, tuple[Answer, str]]:
    """Each need's answer and, when not allowed, why (the API server's reason or error)."""
    wanted = sorted(set(needs))
    answers: dict[Need, tuple[Answer, str]] = {
        need: ("unknown", f"more than {MAX_NEEDS} reviews") for need in wanted[MAX_NEEDS:]
    }
    slots = asyncio.Semaphore(concurrency)

    async def ask(need: Need) -> None:
        async with slots:
            try:
                result = await kube.access_review(
                    need.verb, need.group, need.resource, need.namespace
                )
            except errors.MonitorError as exc:
                answers[need] = ("unknown", str(exc))
                return
        status = result.get("status") or {}
        reason = str(status.get("reason") or status.get("evaluationError") or "")
        if status.get("allowed") is True:
            answers[need] = ("allowed", "")
        elif status.get("denied") is True or status.get("allowed") is False:
            answers[need] = ("denied", "")
        else:
            answers[need] = ("unknown", reason or "the review gave no answer")

    tasks = [asyncio.ensure_future(ask(need)) for need in wanted[:MAX_NEEDS]]
    if tasks:
        await asyncio.wait(tasks, timeout=within)
    for task in tasks:
        task.cancel()
    for need in wanted:
        answers.setdefault(need, ("unknown", f"no answer within {within:g}s"))
    return answers


async def check(
    kube: k8s_client.Kube,
    wanted: Mapping[str, Iterable[Need]],
    *,
    concurrency: int = CONCURRENCY,
    within: float = WITHIN,
) -> list[Finding]:
    """What each policy in ``wanted`` needs and is not known to have, sorted by policy
    and need (each distinct need is reviewed once)."""
    per_policy = {policy: sorted(set(needs)) for policy, needs in wanted.items()}
    answers = await review(
        kube,
        (n for needs in per_policy.values() for n in needs),
        concurrency=concurrency,
        within=within,
    )
    return [
        Finding(policy, need, *answers[need])
        for policy, needs in sorted(per_policy.items())
        for need in needs
        if answers[need][0] != "allowed"
    ]


def denied(findings: Iterable[Finding]) -> dict[str, str]:
    """Policy -> why it cannot act, for the policies missing a permission the cluster
    denied (an unknown answer stops nothing)."""
    reasons: dict[str, list[str]] = {}
    for finding in findings:
        if finding.answer == "denied":
            reasons.setdefault(finding.policy, []).append(f"needs {finding.need}: denied")
    return {policy: "; ".join(why) for policy, why in reasons.items()}
