"""``make demo``: the whole loop, twice, in under a minute, with a timeline.

1. The demo API starts failing half of its requests. Prometheus fires HighErrorRate,
   Alertmanager posts it, conea-monitor scales the Deployment out through its HPA,
   verifies the recovery in Prometheus and, once the alert has resolved, scales back.
2. The demo's health endpoint stops answering. The probe alert fires, conea-monitor
   restarts the Deployment, the probe still fails, and the ladder pages on-call.

Every program runs on 127.0.0.1 (see ``demo/stack.py``); everything is stopped at the
end, on an error and on Ctrl-C. Nothing is left running.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import httpx

from demo import stack as stack_mod
from demo import timeline as timeline_mod

INTERRUPTED: list[int] = []


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Ctrl-C reaches the whole process group: the programs the demo started may stop
    # (and a request to them fail) before this handler runs. Either way, clean up.
    INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def error_rate(t: timeline_mod.Timeline, directory: Path) -> None:
    t.note("== 1. The API fails 50% of requests: HighErrorRate -> scale out -> verify -> revert")
    with stack_mod.running(directory) as s:
        t.watch(s)
        t.say("demo", f"stack up: demo API {s.demo.url}, conea-monitor {s.service.url}")
        s.demo.set(error_ratio=0.5)
        t.say("demo", "conea-api now answers 500 to every second request (overload)")

        def scaled() -> bool:
            return bool(s.hpa()["spec"]["minReplicas"] > 4)

        t.run_until(scaled, 40, "the scale-out")
        s.demo.set(error_ratio=0.0)
        t.say("demo", "the new pods take the load: errors stop")

        def reverted() -> bool:
            return any(e["revert_state"] == "done" for e in s.executions())

        t.run_until(reverted, 40, "the revert")
        t.poll()
        [execution] = s.executions()
        fired = stack_mod.parse_time(execution["starts_at"])
        [write] = [a for a in s.audit() if a["kind"] == "execute"]
        delay = (stack_mod.parse_time(write["at"]) - fired).total_seconds()
        t.note(f"   alert fired -> Kubernetes written: {delay:.2f}s; HPA back to minReplicas 4")


def probe_down(t: timeline_mod.Timeline, directory: Path) -> None:
    t.note("== 2. /healthz stops answering: ProbeTargetDown -> restart -> still down -> page")
    with stack_mod.running(directory) as s:
        t.watch(s)
        t.say("demo", f"fresh stack up: demo API {s.demo.url}, conea-monitor {s.service.url}")
        s.demo.set(healthy=False)
        t.say("demo", "/healthz now answers 503; a restart will not help (bad config)")

        def paged() -> bool:
            return bool(s.pages())

        t.run_until(paged, 40, "the page")
        s.demo.set(healthy=True)
        t.say("demo", "a person fixes the config: /healthz answers 200 again")
        t.run_until(
            lambda: bool(s.posted_by_alertmanager("ProbeTargetDown", "resolved")),
            30,
            "the resolution",
        )
        time.sleep(0.5)
        t.poll()


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    t = timeline_mod.Timeline()
    started = time.monotonic()
    print("conea-monitor demo: demo API + conea-monitor + Prometheus + Alertmanager +")
    print("Kubernetes emulator, all on 127.0.0.1; rules and policies shortened to seconds.")
    try:
        with tempfile.TemporaryDirectory(prefix="conea-demo-") as tmp:
            first, second = Path(tmp) / "1", Path(tmp) / "2"
            first.mkdir()
            second.mkdir()
            error_rate(t, first)
            probe_down(t, second)
    except (KeyboardInterrupt, httpx.HTTPError, TimeoutError, RuntimeError) as exc:
        if INTERRUPTED or isinstance(exc, KeyboardInterrupt):
            print("\ninterrupted: everything the demo started is stopped", file=sys.stderr)
            return 130
        print(f"\ndemo failed: {exc}; everything it started is stopped", file=sys.stderr)
        return 1
    print(f"\ndone in {time.monotonic() - started:.0f}s; nothing is left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
