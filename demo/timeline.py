"""What happened and why, as one timeline: the demo, Prometheus, Alertmanager,
conea-monitor's audit trail, the Kubernetes objects and the on-call receiver.

:class:`Timeline` polls each of them and prints what changed since the last poll, with
the time since the demo started. The audit records carry the service's own reasons
("decision ... execute", "verify recovered: <PromQL> returns no series", ...).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import httpx

from demo import stack as stack_mod

WHO_WIDTH = 13


class Timeline:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.t0 = time.time()
        self.stack: stack_mod.Stack | None = None
        self._batch: list[tuple[float, str, str]] | None = None
        self._reset()

    def _reset(self) -> None:
        self._alerts: dict[str, str] = {}  # alertname -> pending / firing
        self._audit_seen: set[int] = set()
        self._am_seen = 0
        self._pages_seen = 0
        self._k8s: tuple[Any, ...] | None = None

    def watch(self, stack: stack_mod.Stack) -> None:
        """Follow a (new) stack; what it already holds is not news."""
        self.stack = stack
        self._reset()
        self._k8s = self._k8s_state()

    def say(self, who: str, what: str, at: float | None = None) -> None:
        """Print now, or (inside :meth:`poll`) once the poll has sorted its events."""
        event = (at if at is not None else time.time(), who, what)
        if self._batch is not None:
            self._batch.append(event)
        else:
            self._print(*event)

    def _print(self, at: float, who: str, what: str) -> None:
        self.out.write(f"{at - self.t0:+7.1f}s  {who:<{WHO_WIDTH}} {what}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f"\n{text}\n")
        self.out.flush()

    # Polling ----------------------------------------------------------------------------

    def poll(self) -> None:
        if self.stack is None:
            return
        self._batch = []
        try:
            self._poll_prometheus()
            self._poll_alertmanager()
            self._poll_audit()
            self._poll_kubernetes()
            self._poll_pages()
        finally:
            batch, self._batch = self._batch, None
            for event in sorted(batch, key=lambda e: e[0]):
                self._print(*event)

    def run_until(self, done: Any, timeout: float, what: str) -> None:
        """Poll every 0.2 s until ``done()`` is true; a timeout is an error naming ``what``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if done():
                return
            time.sleep(0.2)
        raise TimeoutError(f"the demo waited {timeout:.0f}s for {what}")

    def _poll_prometheus(self) -> None:
        assert self.stack is not None
        try:
            data = httpx.get(f"{self.stack.prometheus.url}/api/v1/alerts", timeout=5).json()
        except httpx.HTTPError:
            return
        now: dict[str, tuple[str, dict[str, Any]]] = {}
        for alert in data["data"]["alerts"]:
            now[alert["labels"]["alertname"]] = (alert["state"], alert)
        for name, (state, alert) in now.items():
            if self._alerts.get(name) == state:
                continue
            self._alerts[name] = state
            value = _number(alert.get("value", ""))
            summary = alert.get("annotations", {}).get("summary", "")
            if state == "pending":
                self.say("prometheus", f"{name} pending (value {value}), waiting for its for:")
            else:
                self.say("prometheus", f"{name} FIRING: {summary}")
        for name in [n for n in self._alerts if n not in now]:
            del self._alerts[name]
            self.say("prometheus", f"{name} resolved: its expression is false again")

    def _poll_alertmanager(self) -> None:
        assert self.stack is not None
        sent = self.stack.receiver.on("/alertmanager")
        for item in sent[self._am_seen :]:
            body = item.json()
            names = sorted({a["labels"]["alertname"] for a in body["alerts"]})
            self.say(
                "alertmanager",
                f"POST webhook ({body['status']}: {', '.join(names)}) with the Bearer token",
                at=item.at,
            )
        self._am_seen = len(sent)

    def _poll_audit(self) -> None:
        assert self.stack is not None
        try:
            records = self.stack.audit()
        except (httpx.HTTPError, KeyError):
            return
        for record in records:
            if record["id"] in self._audit_seen:
                continue
            self._audit_seen.add(record["id"])
            at = stack_mod.parse_time(record["at"]).timestamp()
            self.say("conea-monitor", f"{record['kind']}: {record['message']}", at=at)

    def _k8s_state(self) -> tuple[Any, ...]:
        assert self.stack is not None
        hpa = self.stack.hpa()["spec"]
        meta = self.stack.deployment()["spec"]["template"]["metadata"]
        restarted = (meta.get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")
        return hpa["minReplicas"], hpa["maxReplicas"], restarted

    def _poll_kubernetes(self) -> None:
        state = self._k8s_state()
        if self._k8s is not None and state != self._k8s:
            before, after = self._k8s, state
            if before[:2] != after[:2]:
                self.say(
                    "kubernetes",
                    f"HPA production/conea-api minReplicas {before[0]} -> {after[0]} "
                    f"(maxReplicas {after[1]})",
                )
            if before[2] != after[2]:
                self.say(
                    "kubernetes",
                    f"Deployment production/conea-api restartedAt={after[2]} (rolling restart)",
                )
        self._k8s = state

    def _poll_pages(self) -> None:
        assert self.stack is not None
        pages = self.stack.receiver.on("/oncall")
        for item in pages[self._pages_seen :]:
            page = item.json()
            self.say("on-call", f"PAGE: {page['title']}", at=item.at)
        self._pages_seen = len(pages)


def _number(text: str) -> str:
    try:
        return f"{float(text):.3g}"
    except ValueError:
        return text or "?"
