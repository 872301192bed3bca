"""The console in a real browser (headless Chromium) against the real service: pages show
what the engine did, pause/resume through the page lands in the audit trail, a form
without its CSRF token and a viewer's POST are refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.engine.conftest import wait_for
from tests.support import browser
from tests.support import service as svc
from tests.ui.conftest import POLICIES, alert, notification

OPERATOR = "operator-token-for-the-browser-tests"
VIEWER = "viewer-token-for-the-browser-tests"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    directory = tmp_path_factory.mktemp("console")
    (directory / "policies.yaml").write_text(POLICIES)
    config = svc.write_config(
        directory,
        policies=[str(directory / "policies.yaml")],
        kubernetes={"mode": "none"},
        automation={"mode": "live", "api_token": OPERATOR},
        access={"viewer_token": VIEWER},
    )
    with svc.running(config) as running:
        answer = running.post(
            notification(
                alert("HighErrorRate", "b1"), alert("QueueBacklog", "b2", deployment="worker")
            )
        )
        assert answer.status_code == 200, answer.text
        yield running


def api(service: svc.Service, path: str, **params: Any) -> Any:
    answer = service.get(path, params=params, headers={"authorization": f"Bearer {OPERATOR}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def chrome() -> Iterator[webdriver.Chrome]:
    with browser.chromium() as driver:
        yield driver


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, 20)


def follow(driver: webdriver.Chrome, by: str, value: str) -> None:
    """Click a link or a form's button and wait until the page it leads to has replaced
    this one (looking for an element meanwhile can find the old page's, detached under us)."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, value).click()
    wait(driver).until(expected_conditions.staleness_of(old))


def login(driver: webdriver.Chrome, service: svc.Service, token: str) -> None:
    driver.get(f"{service.url}/ui/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait(driver).until(expected_conditions.url_to_be(f"{service.url}/ui/"))


def settled(service: svc.Service) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = api(service, "/api/v1/executions")["items"]
        states = {r["state"] for r in rows}
        return rows if len(rows) >= 2 and not states & {"running", "deferred"} else None

    found: list[dict[str, Any]] = wait_for(done, 30, "the executions")
    return found


def test_pages_show_what_the_engine_did(service: svc.Service, chrome: webdriver.Chrome) -> None:
    rows = settled(service)
    done = next(r for r in rows if r["policy"] == "restart-api")
    chrome.get(f"{service.url}/ui/")
    assert "Log in" in chrome.find_element(By.TAG_NAME, "h1").text  # credentials are set
    login(chrome, service, VIEWER)
    assert chrome.find_element(By.ID, "identity").text == "viewer-token (viewer)"
    firing_text = chrome.find_element(By.ID, "firing").text
    assert "HighErrorRate" in firing_text and "restart-api" in firing_text
    assert "QueueBacklog" in chrome.find_element(By.ID, "awaiting").text
    assert not chrome.find_elements(By.ID, "switch-button")  # a viewer gets no controls

    follow(chrome, By.LINK_TEXT, "Executions")
    follow(chrome, By.LINK_TEXT, str(done["id"]))
    assert chrome.find_element(By.ID, "state").text == "succeeded"
    assert "Deployment/production/conea-api" in chrome.find_element(By.ID, "target").text
    timeline = chrome.find_element(By.ID, "audit").text
    assert "succeeded" in timeline
    assert "cooldown" in chrome.find_element(By.ID, "guardrails").text

    follow(chrome, By.LINK_TEXT, "Alerts")
    assert f"#{done['id']}" in chrome.find_element(By.TAG_NAME, "table").text


def test_pause_and_resume_through_the_page(service: svc.Service, chrome: webdriver.Chrome) -> None:
    login(chrome, service, OPERATOR)
    chrome.find_element(By.ID, "reason").send_keys("browser test pause")
    follow(chrome, By.ID, "switch-button")
    wait(chrome).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "pause-state"), "paused")
    )
    assert "operator-token (console)" in chrome.find_element(By.ID, "pause-who").text
    assert api(service, "/api/v1/status")["paused"] is True
    messages = [a["message"] for a in api(service, "/api/v1/audit", kind="pause")["items"]]
    assert "automation paused by operator-token (console): browser test pause" in (messages)

    follow(chrome, By.ID, "switch-button")  # now "Resume automation"
    wait(chrome).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "pause-state"), "running")
    )
    assert api(service, "/api/v1/status")["paused"] is False
    messages = [a["message"] for a in api(service, "/api/v1/audit", kind="resume")["items"]]
    assert any(m.startswith("automation resumed by operator-token (console)") for m in messages)


def test_a_form_without_its_csrf_token_is_refused(
    service: svc.Service, chrome: webdriver.Chrome
) -> None:
    login(chrome, service, OPERATOR)
    chrome.execute_script("document.querySelector('#switch input[name=csrf]').remove()")
    chrome.find_element(By.ID, "switch-button").click()
    problem = wait(chrome).until(
        expected_conditions.presence_of_element_located((By.ID, "problem"))
    )
    assert "CSRF token is missing" in problem.text
    assert api(service, "/api/v1/status")["paused"] is False


def test_a_viewers_post_is_refused(service: svc.Service, chrome: webdriver.Chrome) -> None:
    login(chrome, service, VIEWER)
    chrome.get(f"{service.url}/ui/policies")
    # A viewer's page has no pause form; build one with the viewer's own CSRF token.
    chrome.execute_script(
        "const f = document.querySelector('form[action=\"/ui/logout\"]');"
        "f.action = '/ui/pause'; f.submit();"
    )
    problem = wait(chrome).until(
        expected_conditions.presence_of_element_located((By.ID, "problem"))
    )
    assert "operator access is needed; you are a viewer" in problem.text
    assert api(service, "/api/v1/status")["paused"] is False
    assert httpx.post(f"{service.url}/ui/pause", timeout=10).status_code == 401
