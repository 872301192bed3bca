"""The redis prober against a real redis-server (the session ``redis_server`` fixture)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from tests.probes import servers
from tests.support import services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_service() -> Iterator[servers.Service]:
    config = """
allow: {cidrs: [127.0.0.0/8]}
modules:
  redis: {prober: redis, timeout: 3s}
  redis_auth:
    prober: redis
    redis: {password_env: CONEA_TEST_PROBE_REDIS_PASSWORD}
  redis_unset:
    prober: redis
    redis: {password_env: CONEA_TEST_PROBE_REDIS_UNSET}
"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONEA_TEST_PROBE_REDIS_PASSWORD", "wrong-redis-secret")
        mp.delenv("CONEA_TEST_PROBE_REDIS_UNSET", raising=False)
        with servers.service(config) as running:
            yield running


def test_up_with_clients_and_memory(
    redis_service: servers.Service, redis_server: services.Redis
) -> None:
    with redis.Redis(host=redis_server.host, port=redis_server.port) as other:
        other.config_set("maxmemory", "64mb")
        other.set("conea-probe-key", "1")
        other.get("conea-probe-key")
        other.get("conea-probe-missing")
        result = redis_service.probe("redis", f"{redis_server.host}:{redis_server.port}")
    assert result.success
    assert result.value("redis_up") == 1
    assert result.value("redis_connected_clients") >= 2  # the probe and `other`
    assert result.value("redis_blocked_clients") == 0
    assert result.value("redis_memory_used_bytes") > 0
    assert result.value("redis_memory_max_bytes") == 64 * 1024 * 1024
    assert result.value("redis_evicted_keys_total") == 0
    assert result.value("redis_rejected_connections_total") == 0
    assert 0 < result.value("redis_exporter_last_scrape_ping_time_seconds") < 1
    assert result.value("redis_keyspace_hits_total") >= 1
    assert result.value("redis_keyspace_misses_total") >= 1
    assert result.value("redis_commands_processed_total") >= 4


def test_blocked_client_is_counted(
    redis_service: servers.Service, redis_server: services.Redis
) -> None:
    with redis.Redis(host=redis_server.host, port=redis_server.port) as blocker:
        conn = blocker.connection_pool.get_connection()
        try:
            conn.send_command("BLPOP", "conea-probe-empty", 5)
            services.wait_for(
                lambda: (
                    redis_service.probe("redis", f"{redis_server.host}:{redis_server.port}").value(
                        "redis_blocked_clients"
                    )
                    == 1
                ),
                5,
                "a blocked client",
            )
        finally:
            conn.disconnect()
            blocker.connection_pool.release(conn)


def test_auth_failure_is_down_without_the_secret(redis_service: servers.Service) -> None:
    with services.redis_server("--requirepass", "right-redis-secret") as guarded:
        target = f"{guarded.host}:{guarded.port}"
        response = redis_service.get("redis_auth", target, debug="true")
        assert "redis_up 0.0" in response.text and "probe_success 0.0" in response.text
        assert "AuthenticationError" in response.text
        assert "wrong-redis-secret" not in response.text
        # without a password the server is reachable but refuses commands
        assert not redis_service.probe("redis", target).success


def test_nothing_listening_is_down(redis_service: servers.Service) -> None:
    result = redis_service.probe("redis", f"127.0.0.1:{services.free_port()}")
    assert not result.success
    assert result.value("redis_up") == 0


def test_silent_server_is_down_at_the_deadline(
    redis_service: servers.Service, targets: servers.Targets
) -> None:
    result = redis_service.probe("redis", f"127.0.0.1:{targets.silent_port}", timeout=1.5)
    assert not result.success
    assert result.value("redis_up") == 0
    assert 0.95 <= result.value("probe_duration_seconds") < 1.4


def test_unset_password_variable_connects_without_a_password(
    redis_service: servers.Service, redis_server: services.Redis
) -> None:
    response = redis_service.get(
        "redis_unset", f"{redis_server.host}:{redis_server.port}", debug="true"
    )
    assert "redis_up 1.0" in response.text and "probe_success 1.0" in response.text
    assert (
        "environment variable 'CONEA_TEST_PROBE_REDIS_UNSET' is not set: connecting without a "
        "password" in response.text
    )


def test_a_server_that_wants_a_password_says_why_at_info(
    redis_service: servers.Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.probes.redis")
    with services.redis_server("--requirepass", "right-redis-secret") as guarded:
        target = f"{guarded.host}:{guarded.port}"
        assert not redis_service.probe("redis_unset", target).success
    [record] = [r for r in caplog.records if r.name == "monitor.probes.redis"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith(f"probe failed: module redis_unset, target {target}: redis failed: ")
    assert "AuthenticationError" in message
    assert "'CONEA_TEST_PROBE_REDIS_UNSET' is not set: connecting without a password" in message
