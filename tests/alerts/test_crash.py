"""SIGKILL in the middle of a stream of webhooks loses nothing that was answered 200."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx

from tests.alerts.test_webhook import make_payload
from tests.support import service as svc


def payload(sender: int, seq: int) -> bytes:
    body = make_payload(3)
    for i, alert in enumerate(body["alerts"]):
        alert["fingerprint"] = f"{sender:04x}{seq:08x}{i:04x}"
        alert["labels"]["seq"] = f"{sender}-{seq}"
    return json.dumps(body).encode()


def test_sigkill_loses_no_answered_notification(store_url: str, tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, store={"url": store_url})
    service = svc.start(config)
    answered: list[str] = []
    failed = 0
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        nonlocal failed
        with httpx.Client(timeout=5) as client:
            seq = 0
            while not stop.is_set():
                seq += 1
                try:
                    r = client.post(
                        f"{service.url}/webhook/alertmanager",
                        content=payload(n, seq),
                        headers={"content-type": "application/json"},
                    )
                except httpx.HTTPError:
                    with lock:
                        failed += 1
                    continue
                if r.status_code == 200:
                    with lock:
                        answered.append(f"{n}-{seq}")

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while len(answered) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    service.kill()  # SIGKILL while the senders are still posting
    stop.set()
    for t in threads:
        t.join()
    assert len(answered) >= 200, "the stream was too slow to test anything"

    with svc.running(config) as restarted:
        seen: set[str] = set()
        before = None
        while True:
            params: dict[str, int] = {"limit": 1000}
            if before is not None:
                params["before"] = before
            page = restarted.get("/api/v1/alerts", params=params).json()
            seen.update(a["labels"]["seq"] for a in page["items"])
            before = page["next"]
            if before is None:
                break
    missing = sorted(set(answered) - seen)
    assert not missing, f"{len(missing)} answered notifications lost: {missing[:5]}"
