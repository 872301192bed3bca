"""Blackbox-style probes served on ``/probe?target=&module=``.

::

    service = ProbeService.from_file(path_or_None, metrics)
    result = await service.probe("http_2xx", "https://api.conea.io/health",
                                 scrape_timeout="10")
    body = result.exposition()
    await service.aclose()

Probers (http, tcp, postgres, redis, dns, icmp, grpc) live in a name -> function map
(:mod:`monitor.probes.probers`); modules come from a strict YAML file
(:mod:`monitor.probes.config`).
"""

from __future__ import annotations

from monitor.probes.service import ProbeService, Result, TooManyProbes

__all__ = ["ProbeService", "Result", "TooManyProbes"]
