"""The ``redis`` prober: PING and INFO over a fresh connection (redis-py asyncio).

Names follow redis_exporter: ``redis_up``,
``redis_exporter_last_scrape_connect_time_seconds``,
``redis_exporter_last_scrape_ping_time_seconds``, ``redis_connected_clients``,
``redis_blocked_clients``, ``redis_memory_used_bytes``, ``redis_memory_max_bytes``,
``redis_evicted_keys_total``, ``redis_rejected_connections_total``,
``redis_keyspace_hits_total``, ``redis_keyspace_misses_total``,
``redis_commands_processed_total``, ``redis_uptime_in_seconds``. The password comes
from the module, never the target; an unset ``password_env`` connects without one. Why a
probe failed is logged at INFO (and traced for ``debug=true``), never the password.
"""

from __future__ import annotations

import time

import redis.asyncio
import redis.exceptions
from redis import backoff
from redis.asyncio import retry

from monitor.probes import config, context

# INFO field -> (metric, help)
FIELDS = {
    "connected_clients": ("redis_connected_clients", "Number of client connections"),
    "blocked_clients": ("redis_blocked_clients", "Clients blocked on a blocking call"),
    "used_memory": ("redis_memory_used_bytes", "Memory used by Redis"),
    "maxmemory": ("redis_memory_max_bytes", "maxmemory setting (0 = no limit)"),
    "evicted_keys": ("redis_evicted_keys_total", "Keys evicted because of maxmemory"),
    "rejected_connections": (
        "redis_rejected_connections_total",
        "Connections rejected because of maxclients",
    ),
    "uptime_in_seconds": ("redis_uptime_in_seconds", "Seconds since the server started"),
    "keyspace_hits": ("redis_keyspace_hits_total", "Successful key lookups"),
    "keyspace_misses": ("redis_keyspace_misses_total", "Failed key lookups"),
    "total_commands_processed": (
        "redis_commands_processed_total",
        "Commands processed by the server",
    ),
}


async def probe(p: context.Probe) -> bool:
    cfg: config.RedisConfig = p.module.section()
    _up(p, False)  # until proven otherwise, also when the deadline cancels the probe
    try:
        password, source = cfg.password_or_none()
    except LookupError as exc:
        return _failed(p, f"no password: {exc}")
    p.trace(f"connecting to {p.target.host}:{p.target.port} ({source})")
    t = cfg.tls_config
    db = int(p.target.path) if p.target.path.isdigit() else 0
    client = redis.asyncio.Redis(
        host=p.target.host,
        port=p.target.port,
        db=db,
        username=cfg.username,
        password=password,
        ssl=cfg.tls,
        ssl_ca_certs=str(t.ca_file) if t.ca_file else None,
        ssl_certfile=str(t.cert_file) if t.cert_file else None,
        ssl_keyfile=str(t.key_file) if t.key_file else None,
        ssl_cert_reqs="none" if t.insecure_skip_verify else "required",
        ssl_check_hostname=not t.insecure_skip_verify,
        socket_connect_timeout=max(0.001, p.remaining()),
        socket_timeout=max(0.001, p.remaining()),
        single_connection_client=True,
        retry=retry.Retry(backoff.NoBackoff(), 0),
    )
    try:
        start = time.perf_counter()
        await client.initialize()
        connected = time.perf_counter()
        p.out.gauge(
            "redis_exporter_last_scrape_connect_time_seconds",
            "Time to connect to Redis",
            connected - start,
        )
        await client.ping()
        p.out.gauge(
            "redis_exporter_last_scrape_ping_time_seconds",
            "Time for a PING round trip",
            time.perf_counter() - connected,
        )
        info = await client.info()
    except (redis.exceptions.RedisError, OSError) as exc:
        message = str(exc).replace(password, "***") if password else str(exc)
        return _failed(p, f"redis failed: {type(exc).__name__}: {message} ({source})")
    finally:
        await client.aclose()
    for field, (name, documentation) in FIELDS.items():
        value = info.get(field)
        if isinstance(value, int | float):
            p.out.gauge(name, documentation, value)
    p.trace(f"PING ok; role {info.get('role')!r}")
    _up(p, True)
    return True


def _failed(p: context.Probe, reason: str) -> bool:
    p.failed(reason)
    _up(p, False)
    return False


def _up(p: context.Probe, up: bool) -> None:
    p.out.gauge("redis_up", "Information about the Redis instance", up)
