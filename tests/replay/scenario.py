"""The known history tests/replay asserts the exact report of, and its policies.

Two days from Monday 2026-03-02 00:00 UTC, one sample a minute while firing:

==================  ==========================================================
Short a             00:00-00:05 (under for_at_least 10m), 01:00-01:30 (acts 01:10)
Gappy g             02:00-02:21 with 02:10 missing: one episode (a scrape hole)
Gappy h             02:00-02:21 with 02:08-02:10 missing: two episodes
Flappy c            03:00 acts, 03:04 waits for the cooldown (10m), 03:07 and pod
                    p2 at 03:08 are coalesced into it; at 03:10 the 03:07 episode
                    (still firing) acts; 03:30 and 03:40 stopped by the budget
Sticky l            04:00-05:00: steps 1, 2, 3 (the episode outlasts each verify
                    window), reverted at 05:10
Sticky r            06:00-06:03 recovered by step 1, its revert (06:13) cancelled by
                    the re-fire at 06:10, which recovers too and is reverted 06:22
Night n             Mon 22:00-Tue 09:00: waits for daytime (08:00-20:00 UTC), acts 08:00
Night m             Mon 23:00-Tue 01:00: never inside daytime
System kube-system  out of scope
==================  ==========================================================
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.alerts_history import Series

START = datetime(2026, 3, 2, tzinfo=UTC)
UNTIL = START + timedelta(days=2)


def minutes(
    first: str, last: str, *, day: int = 0, missing: tuple[str, ...] = ()
) -> list[datetime]:
    """One sample a minute from ``first`` to ``last`` (HH:MM, inclusive) of day ``day``;
    ``last`` before ``first`` runs into the next day."""

    def at(text: str, d: int) -> datetime:
        hours, mins = map(int, text.split(":"))
        return START + timedelta(days=d, hours=hours, minutes=mins)

    begin, end = at(first, day), at(last, day)
    if end < begin:
        end += timedelta(days=1)
    gone = {at(m, day) for m in missing}
    found = []
    while begin <= end:
        if begin not in gone:
            found.append(begin)
        begin += timedelta(minutes=1)
    return found


def _labels(alertname: str, deployment: str, **extra: str) -> dict[str, str]:
    return {"alertname": alertname, "namespace": "shop", "deployment": deployment, **extra}


HISTORY: list[Series] = [
    (_labels("Short", "a"), minutes("00:00", "00:04") + minutes("01:00", "01:29")),
    (_labels("Gappy", "g"), minutes("02:00", "02:20", missing=("02:10",))),
    (_labels("Gappy", "h"), minutes("02:00", "02:20", missing=("02:08", "02:09", "02:10"))),
    (
        _labels("Flappy", "c"),
        minutes("03:00", "03:01")
        + minutes("03:04", "03:04")
        + minutes("03:07", "03:19")
        + minutes("03:30", "03:31")
        + minutes("03:40", "03:41"),
    ),
    (_labels("Flappy", "c", pod="p2"), minutes("03:08", "03:08")),
    (_labels("Sticky", "l"), minutes("04:00", "04:59")),
    (_labels("Sticky", "r"), minutes("06:00", "06:02") + minutes("06:10", "06:11")),
    (_labels("Night", "n"), minutes("22:00", "08:59")),
    (_labels("Night", "m"), minutes("23:00", "00:59")),
    (
        {"alertname": "System", "namespace": "kube-system", "deployment": "dns"},
        minutes("12:00", "12:09"),
    ),
]

TARGET = """
    target:
      kind: Deployment
      namespace: "{{ labels.namespace }}"
      name: "{{ labels.deployment }}"
"""

POLICIES = f"""
time_intervals:
  - name: daytime
    time_intervals:
      - times: [{{start_time: "08:00", end_time: "20:00"}}]
policies:
  - name: short
    match: ['alertname="Short"']{TARGET}
    steps: [[{{action: log}}]]
    for_at_least: 10m
  - name: gappy
    match: ['alertname="Gappy"']{TARGET}
    steps: [[{{action: log}}]]
  - name: flappy
    match: ['alertname="Flappy"']{TARGET}
    steps: [[{{action: log}}]]
    cooldown: 10m
    budget: {{attempts: 2, window: 1h}}
  - name: sticky
    match: ['alertname="Sticky"']{TARGET}
    steps: [[{{action: log}}], [{{action: log}}], [{{action: log}}]]
    revert: {{enabled: true, after: 10m}}
  - name: daytime-only
    match: ['alertname="Night"']{TARGET}
    steps: [[{{action: log}}]]
    active_time_intervals: [daytime]
  - name: system
    match: ['alertname="System"']{TARGET}
    steps: [[{{action: log}}]]
  - name: unused
    match: ['alertname="Nope"']{TARGET}
    steps: [[{{action: log}}]]
"""
