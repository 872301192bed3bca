"""monitor.client against the real service (tests/support/service.py): where it looks for
the service and its token, and what each failure tells the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import client
from monitor.client import ServiceClient, ServiceError
from tests.support import service as svc
from tests.support.services import free_port


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    config = svc.write_config(tmp_path_factory.mktemp("client"))
    with svc.running(config) as running:
        yield running


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (client.URL_ENV, client.TOKEN_ENV, client.TOKEN_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_flags_or_environment_it_looks_where_serve_listens(
    no_env: pytest.MonkeyPatch,
) -> None:
    found = ServiceClient.from_args(None, None)
    assert found.url == "http://127.0.0.1:9115"
    assert found.token_source == "no token"


def test_the_flag_wins_over_the_environment(no_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_env.setenv(client.URL_ENV, "http://10.0.0.1:9115/")
    assert ServiceClient.from_args(None, None).url == "http://10.0.0.1:9115"
    assert ServiceClient.from_args("https://conea.example.org/", None).url == (
        "https://conea.example.org"
    )
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    no_env.setenv(client.TOKEN_ENV, "from-the-environment")
    assert (
        ServiceClient.from_args(None, token_file).token_source
        == f"--token-file {str(token_file)!r}"
    )
    assert ServiceClient.from_args(None, None).token_source == "$CONEA_MONITOR_TOKEN"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            client.TOKEN_ENV,
            "  ",
            "$CONEA_MONITOR_TOKEN is set but empty: set it to the token or unset it",
        ),
        (
            client.TOKEN_FILE_ENV,
            "",
            "$CONEA_MONITOR_TOKEN_FILE is set but empty: name the token's file",
        ),
        (
            client.URL_ENV,
            "127.0.0.1:9115",
            "$CONEA_MONITOR_URL: '127.0.0.1:9115' is not the service's address, such as "
            "http://127.0.0.1:9115 or https://conea.example.org",
        ),
    ],
)
def test_an_empty_or_malformed_setting_is_an_error_not_a_default(
    no_env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    no_env.setenv(variable, value)
    with pytest.raises(ServiceError) as caught:
        ServiceClient.from_args(None, None)
    assert str(caught.value) == message


def test_an_empty_token_file_is_refused_naming_it(
    no_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(
        ServiceError, match=r"--token-file '.*/token' is empty: put the token in it"
    ):
        ServiceClient.from_args(None, empty)
    with pytest.raises(ServiceError, match=r"--token-file: cannot read '.*/missing': No such file"):
        ServiceClient.from_args(None, tmp_path / "missing")


def test_credentials_in_the_address_are_refused(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServiceError, match="--url: no credentials in the address"):
        ServiceClient.from_args("http://admin:secret@127.0.0.1:9115", None)


def test_nobody_answering_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceError) as caught:
        ServiceClient(url, "sekrit-token").post("/api/v1/pause")
    message = str(caught.value)
    assert message.startswith(f"no conea-monitor answers at {url}: ")
    assert message.endswith(
        "; start it, pass --url (or set CONEA_MONITOR_URL), or change a store directly "
        "with --config/--store"
    )
    assert "sekrit-token" not in message


def test_reads_and_writes_the_running_service(service: svc.Service) -> None:
    api = ServiceClient(service.url, service.operator_token())
    assert api.get("/api/v1/status")["paused"] is False
    assert api.post("/api/v1/pause", {"reason": "maintenance"}) == {"paused": True}
    assert api.get("/api/v1/status")["paused"] is True
    assert api.post("/api/v1/resume")["paused"] is False
    assert "conea_monitor_build_info" in api.get_text("/metrics")


def test_a_wrong_token_names_its_source_and_never_shows_it(
    service: svc.Service, no_env: pytest.MonkeyPatch
) -> None:
    no_env.setenv(client.URL_ENV, service.url)
    no_env.setenv(client.TOKEN_ENV, "not-the-operator-token")
    api = ServiceClient.from_args(None, None)
    with pytest.raises(ServiceError) as caught:
        api.post("/api/v1/pause", {"reason": "x"})
    assert caught.value.status == 401
    message = str(caught.value)
    assert message.startswith(f"{service.url} refused the token from $CONEA_MONITOR_TOKEN (401: ")
    assert "not-the-operator-token" not in message
    assert "not-the-operator-token" not in repr(api)
    assert service.get("/api/v1/status").json()["paused"] is False


def test_no_token_where_one_is_needed_says_how_to_give_one(service: svc.Service) -> None:
    with pytest.raises(ServiceError, match=r"wants a token \(401: .*\); pass --token-file PATH"):
        ServiceClient(service.url, None).post("/api/v1/pause")


def test_the_services_problem_is_the_message(service: svc.Service) -> None:
    with pytest.raises(ServiceError) as caught:
        ServiceClient(service.url, None).get("/api/v1/executions", {"limit": "0"})
    assert caught.value.status == 400
    assert str(caught.value) == (
        "GET /api/v1/executions: 400 invalid request: query.limit "
        "(query.limit: Input should be greater than or equal to 1)"
    )


def test_an_answer_that_is_not_json_is_not_taken_for_one(service: svc.Service) -> None:
    with pytest.raises(ServiceError, match=r"the answer is not JSON; is http://.* conea-monitor\?"):
        ServiceClient(service.url, None).get("/metrics")


def test_answers_are_bounded(service: svc.Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "MAX_RESPONSE_BYTES", 100)
    with pytest.raises(ServiceError, match=r"/metrics: the answer is over 100 bytes; ask for less"):
        ServiceClient(service.url, None).get_text("/metrics")
