"""Screenshots of the console for docs/: the overview and an execution's page at 1280x900,
and the overview on a phone (390x844), in headless Chromium against the real service
filled by its own engine (log-only policies: nothing outside this machine is touched).

    .venv/bin/python scripts/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from tests.support import browser  # noqa: E402
from tests.support import service as svc  # noqa: E402
from tests.ui.conftest import POLICIES, alert, notification  # noqa: E402

TOKEN = "screenshots-operator-token"  # noqa: S105 (a throwaway service's)


def _executions(service: svc.Service) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {TOKEN}"}
    items: list[dict[str, Any]] = service.get("/api/v1/executions", headers=headers).json()["items"]
    return items


def _fill(service: svc.Service) -> int:
    """Alerts as a bad night brings them; returns the id of a finished execution."""
    for deployment in ("conea-api", "conea-web", "checkout"):
        service.post(notification(alert("HighErrorRate", f"h-{deployment}", deployment)))
    service.post(notification(alert("QueueBacklog", "q-worker", deployment="worker")))
    service.post(notification(alert("DiskFull", "d-db", deployment="postgres")))
    for _ in range(200):
        rows = _executions(service)
        if len(rows) >= 4 and not {r["state"] for r in rows} & {"running", "deferred"}:
            return int(next(r["id"] for r in rows if r["state"] == "succeeded"))
        time.sleep(0.1)
    raise SystemExit("the engine did not decide the alerts in 20 s")


def _arrived(path: str) -> Callable[[Any], bool]:
    def check(driver: Any) -> bool:
        return bool(driver.current_url.endswith(path))

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "policies.yaml").write_text(POLICIES)
        config = svc.write_config(
            directory,
            policies=[str(directory / "policies.yaml")],
            kubernetes={"mode": "none"},
            automation={"mode": "live", "api_token": TOKEN},
            public_url="http://conea-monitor.example",
        )
        with svc.running(config) as service:
            done = _fill(service)
            shots = [
                ((1280, 900), "/ui/", "console-overview.png"),
                ((1280, 900), f"/ui/executions/{done}", "console-execution.png"),
                ((390, 844), "/ui/", "console-phone.png"),
            ]
            for (width, height), path, name in shots:
                with browser.chromium(width, height) as driver:
                    driver.get(f"{service.url}/ui/login")
                    driver.find_element(By.ID, "token").send_keys(TOKEN)
                    driver.find_element(By.ID, "login").click()
                    # The login's redirect must land before the next page is asked for,
                    # or it replaces that page.
                    WebDriverWait(driver, 10).until(lambda d: "/ui/login" not in d.current_url)
                    driver.get(f"{service.url}{path}")
                    WebDriverWait(driver, 10).until(_arrived(path))
                    driver.save_screenshot(str(args.out / name))
                print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
