"""The prober registry: module ``prober:`` name -> probe function.

Every prober has one signature, ``async def probe(p: context.Probe) -> bool``. The
names here are the only ones a module may use (checked when the file loads).
"""

from __future__ import annotations

from monitor.probes import config, context, dns, grpc, http, icmp, postgres, redis, tcp

PROBERS: dict[str, context.Prober] = {
    "http": http.probe,
    "tcp": tcp.probe,
    "postgres": postgres.probe,
    "redis": redis.probe,
    "dns": dns.probe,
    "icmp": icmp.probe,
    "grpc": grpc.probe,
}

assert set(PROBERS) == set(config.PROBERS), "config.PROBERS and the registry disagree"
