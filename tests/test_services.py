"""The real-service fixtures start what they say (everything else relies on them)."""

from __future__ import annotations

import psycopg
import redis

from tests.support import services


def test_postgres_fixture_accepts_password_login(postgres: services.Postgres) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) >= 130000


def test_redis_fixture_answers_ping(redis_server: services.Redis) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    assert client.ping() is True
    client.close()
