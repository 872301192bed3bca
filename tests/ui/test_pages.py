"""The console's pages show what the engine recorded in a real store."""

from __future__ import annotations

import html as html_mod
import re
from typing import Any

from tests.ui.conftest import Console, alert


def text(html: str) -> str:
    """The page's text, tags and runs of white space collapsed."""
    return re.sub(r"\s+", " ", html_mod.unescape(re.sub(r"<[^>]+>", " ", html)))


async def test_overview_shows_the_switch_waiting_approvals_and_firing_alerts(
    console: Console,
) -> None:
    await console.post_alerts(
        alert("HighErrorRate", "a1"), alert("QueueBacklog", "q1", deployment="worker")
    )
    rows = await console.settled(2)
    waiting = next(r for r in rows if r["policy"] == "scale-queue")
    assert waiting["state"] == "awaiting_approval"

    page = await console.client.get("/ui/")
    assert page.status_code == 200
    shown = text(page.text)
    assert "live" in shown and "running" in shown  # the mode; automation is not paused
    awaiting = page.text.split('id="awaiting"')[1].split("</section>")[0]
    assert f'href="/ui/executions/{waiting["id"]}"' in awaiting
    firing = text(page.text.split('id="firing"')[1].split("</section>")[0])
    assert "HighErrorRate" in firing and "restart-api" in firing
    assert "QueueBacklog" in firing and "scale-queue" in firing

    answer = await console.client.post(
        "/api/v1/pause",
        json={"reason": "deploy freeze"},
        headers={"authorization": f"Bearer {console.token}"},
    )
    assert answer.status_code == 200
    shown = text((await console.client.get("/ui/")).text)
    assert "paused" in shown
    assert "by operator-token" in shown
    assert "“deploy freeze”" in shown


async def test_overview_shows_what_is_in_flight(console: Console) -> None:
    await console.post_alerts(alert("HighErrorRate", "a1"))
    [done] = await console.settled(1)
    await console.post_alerts(alert("SlowBurn", "s1", deployment="billing"))

    async def deferred() -> list[dict[str, Any]]:
        return await console.executions(status="deferred")

    [row] = await console.until(deferred, "the deferred execution")
    page = await console.client.get("/ui/")
    in_flight = page.text.split('id="in-flight"')[1].split("</section>")[0]
    assert f'href="/ui/executions/{row["id"]}"' in in_flight
    assert "In flight (1)" in text(in_flight) and "slow-burn" in in_flight
    assert f'href="/ui/executions/{done["id"]}"' not in in_flight  # finished


async def test_execution_page_shows_alert_policy_plan_verdicts_and_timeline(
    console: Console,
) -> None:
    await console.post_alerts(alert("HighErrorRate", "a1"))
    [row] = await console.settled(1)
    assert row["state"] == "succeeded"
    api = (await console.client.get(f"/api/v1/executions/{row['id']}")).json()

    page = await console.client.get(f"/ui/executions/{row['id']}")
    assert page.status_code == 200
    shown = text(page.text)
    assert f"Execution #{row['id']} succeeded" in shown
    assert "restart-api, step 1 of 1" in shown
    assert "Deployment/production/conea-api" in shown
    assert "alertname=HighErrorRate" in shown and "deployment=conea-api" in shown
    assert "HighErrorRate on conea-api" in shown  # an annotation
    assert 'href="http://prometheus:9090/graph?g0.expr=rate"' in page.text
    assert 'alertname="HighErrorRate"' in shown  # the policy's matcher
    plan = text(page.text.split('id="plan"')[1].split("</section>")[0])
    assert "log" in plan and api["actions"][0]["plan"]["summary"] in plan
    verdicts = text(page.text.split('id="guardrails"')[1].split("</section>")[0])
    assert "ok cooldown" in verdicts
    timeline = text(page.text.split('id="audit"')[1].split("</section>")[0])
    for event in api["audit"]:
        assert text(event["message"]).strip() in timeline
    assert 'id="evidence"' in page.text  # where issue 19's evidence is rendered


async def test_executions_are_filtered_and_paged(console: Console) -> None:
    await console.post_alerts(
        alert("HighErrorRate", "a1"),
        alert("HighErrorRate", "a2", deployment="conea-web"),
        alert("QueueBacklog", "q1", deployment="worker"),
    )
    rows = await console.settled(3)
    ids = sorted((r["id"] for r in rows), reverse=True)

    def listed(html: str) -> list[int]:
        return [int(i) for i in re.findall(r'<td><a href="/ui/executions/(\d+)">', html)]

    client = console.client
    assert listed((await client.get("/ui/executions")).text) == ids
    page = await client.get("/ui/executions", params={"state": "awaiting_approval"})
    assert listed(page.text) == [r["id"] for r in rows if r["policy"] == "scale-queue"]
    page = await client.get("/ui/executions", params={"policy": "restart-api", "since": "1h"})
    restarts = sorted(r["id"] for r in rows if r["policy"] == "restart-api")
    assert sorted(listed(page.text)) == restarts
    page = await client.get("/ui/executions", params={"target": "Deployment/production/conea-web"})
    assert len(listed(page.text)) == 1
    page = await client.get("/ui/executions", params={"since": "2999-01-01T00:00:00Z"})
    assert listed(page.text) == []

    first = await client.get("/ui/executions", params={"limit": "2"})
    assert listed(first.text) == ids[:2]
    older = re.search(r'href="/ui/executions\?([^"]+)" id="older"', first.text)
    assert older is not None
    second = await client.get("/ui/executions?" + older.group(1).replace("&amp;", "&"))
    assert listed(second.text) == ids[2:]
    assert 'id="older"' not in second.text


async def test_bad_filters_are_400_pages_naming_them(console: Console) -> None:
    client = console.client
    page = await client.get("/ui/executions", params={"state": "bogus"})
    assert page.status_code == 400
    assert "state 'bogus': one of deferred, running, succeeded" in text(page.text)
    page = await client.get("/ui/executions", params={"since": "yesterday"})
    assert page.status_code == 400 and "since: not a time or duration" in page.text
    page = await client.get("/ui/executions", params={"before": "-1"})
    assert page.status_code == 400 and "before:" in page.text
    page = await client.get("/ui/executions", params={"policy": "x" * 300})
    assert page.status_code == 400 and "policy: at most 255 characters" in page.text
    page = await client.get("/ui/alerts", params={"status": "gone"})
    assert page.status_code == 400 and "status: one of firing, resolved" in page.text
    for missing in ("999999", "abc", str(2**64)):
        page = await client.get(f"/ui/executions/{missing}")
        assert page.status_code == 404


async def test_alerts_page_says_what_each_alert_led_to(console: Console) -> None:
    await console.post_alerts(alert("HighErrorRate", "a1"))
    [done] = await console.settled(1)
    await console.client.post(
        "/api/v1/pause", json={}, headers={"authorization": f"Bearer {console.token}"}
    )
    await console.post_alerts(alert("HighErrorRate", "a2", deployment="conea-web"))
    await console.post_alerts(alert("DiskFull", "d1"))

    async def skipped() -> bool:
        audit = (await console.client.get("/api/v1/audit", params={"kind": "skip"})).json()
        return bool(audit["items"])

    await console.until(skipped, "the paused alert's skip")
    page = await console.client.get("/ui/alerts")
    assert page.status_code == 200
    rows = {
        m.group(1): text(m.group(2))
        for m in re.finditer(r"<tr>\s*<td>(\w+)</td>(.*?)</tr>", page.text, re.S)
        if "conea-web" in m.group(2) or m.group(1) != "HighErrorRate"
    }
    assert "skipped:" in rows["HighErrorRate"] and "paused" in rows["HighErrorRate"]
    assert "no policy matches: recorded only" in rows["DiskFull"]
    assert f'href="/ui/executions/{done["id"]}"' in page.text
    assert "#explain" not in page.text  # explain is an operator's: no link for a reader


async def test_a_stored_alert_can_be_explained(console: Console) -> None:
    await console.post_alerts(alert("QueueBacklog", "q1", deployment="worker"))
    await console.settled(1)
    login = {"token": console.token, "csrf": await console.csrf("/ui/login")}
    assert (await console.client.post("/ui/login", data=login)).status_code == 303  # an operator
    page = await console.client.get("/ui/alerts")
    link = re.search(r'href="(/ui/policies\?alert=\d+)#explain"', page.text)
    assert link is not None
    form = await console.client.get(link.group(1))
    pasted = html_mod.unescape(form.text.split('id="alert-json"')[1].split(">", 1)[1])
    pasted = pasted.split("</textarea>")[0]
    csrf = await console.csrf(link.group(1))
    answer = await console.client.post("/ui/policies/explain", data={"alert": pasted, "csrf": csrf})
    report = text(answer.text.split('id="report"')[1])
    assert "alert QueueBacklog [firing] fingerprint q1" in report
    assert (
        "policy scale-queue" in report and "already recorded: step 1: awaiting_approval" in report
    )
    for bad, status in (("abc", 400), ("999999", 404)):
        assert (await console.client.get(f"/ui/policies?alert={bad}")).status_code == status


NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "null",
    "-1",
    "0",
    "1e309",
    "99999999999999999999999",
    "1h 30m",
    "2999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "🙂" * 40,
    "x" * 5000,
    "'; DROP TABLE executions; --",
    "%",
    "[]",
]


async def test_no_query_value_is_a_server_error(console: Console) -> None:
    pages = {
        "/ui/executions": ["state", "policy", "target", "alertname", "since", "before", "limit"],
        "/ui/alerts": ["status", "alertname", "since", "before", "limit"],
        "/ui/policies": ["alert"],
    }
    for path, params in pages.items():
        for param in params:
            for value in NASTY:
                answer = await console.client.get(path, params={param: value})
                assert answer.status_code < 500, (path, param, value[:20], answer.text[:200])
    for ident in ["0", "-1", "%00", "1.5", "9" * 30, "🙂"]:
        answer = await console.client.get(f"/ui/executions/{ident}")
        assert answer.status_code == 404, ident


async def test_execution_page_shows_the_ladders_evidence_escaped(console: Console) -> None:
    """What the diagnostics stored (a table, log lines, a series, a timeout) is on the
    page, with hostile text escaped and the series drawn as a sparkline."""
    from datetime import UTC, datetime

    from monitor.store import evidence
    from monitor.store.records import Evidence

    await console.post_alerts(alert("HighErrorRate", "a1"))
    [row] = await console.settled(1)
    at = datetime.now(UTC)

    def item(name: str, action: str, outcome: str, result: Any, **kw: Any) -> Evidence:
        fields: dict[str, Any] = {
            "id": 0, "execution_id": row["id"], "phase": "before", "name": name,
            "action": action, "started_at": at, "finished_at": at, "outcome": outcome,
            "error": None, "summary": "", "result": result, "truncated": False, **kw,
        }  # fmt: skip
        return Evidence(**fields)

    for stored in (
        item("pods", "kubernetes.pods", "ok",
             {"kind": "table", "columns": ["name", "ready"],
              "rows": [["conea-api-<b>x</b>", "0/1"]]},
             summary="1 pod, 1 not ready (CrashLoopBackOff)"),
        item("errors", "kubernetes.logs", "ok",
             {"kind": "lines", "lines": ["ERROR <script>alert(1)</script>"]},
             phase="after_verification", truncated=True),
        item("cpu", "prometheus.query", "ok",
             {"kind": "series", "metric": "rate(cpu[1m])",
              "points": [[0, 0.5], [60, 1.5], [120, 1.0]]}),
        item("locks", "postgres.activity", "timed_out", None, error="no answer within 10s"),
    ):  # fmt: skip
        evidence.add(console.rt.db, stored)

    page = await console.client.get(f"/ui/executions/{row['id']}")
    section = page.text.split('id="evidence"')[1].split("</section>")[0]
    shown = text(section)
    assert "pods (kubernetes.pods) step 1, before the first step" in shown
    assert "1 pod, 1 not ready (CrashLoopBackOff)" in shown
    assert "<td>conea-api-&lt;b&gt;x&lt;/b&gt;</td>" in section
    assert "after a failed check" in shown and "(cut to its size cap)" in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>" not in section
    assert 'points="0.0,40.0 120.0,0.0 240.0,20.0"' in section
    assert "locks (postgres.activity)" in shown and "timed_out" in shown
    assert "no answer within 10s" in shown
    assert shown.index("pods (") < shown.index("errors (") < shown.index("locks (")
