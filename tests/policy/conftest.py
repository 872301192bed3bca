"""A small action registry for policy tests: the built-in ``log`` and a ``test.scale``."""

from __future__ import annotations

import os

import pytest
from pydantic import Field

from monitor.actions import builtin
from monitor.actions import registry as actions

POLICY_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "policies")


class ScaleParams(actions.StrictModel):
    replicas: int = Field(ge=0)


class FakeScale(actions.Action[ScaleParams]):
    name = "test.scale"
    Params = ScaleParams

    async def plan(self, params: ScaleParams, ctx: actions.ActionContext) -> actions.Plan:
        return actions.Plan(action=self.name, summary=f"scale to {params.replicas}")

    async def apply(
        self, params: ScaleParams, ctx: actions.ActionContext, plan: actions.Plan
    ) -> actions.Outcome:
        return actions.Outcome(summary=plan.summary)


def make_registry() -> actions.Registry:
    registry = actions.Registry()
    builtin.register(registry)
    registry.register(FakeScale)
    return registry


@pytest.fixture
def registry() -> actions.Registry:
    return make_registry()
