"""The built-in probe modules, used when no probe file is configured.

Kept identical to ``config/probes.yml`` (a test checks it), which documents them.
"""

from __future__ import annotations

TEXT = """\
# Probe modules for GET /probe?target=...&module=... (blackbox_exporter's layout).
# The built-in defaults of conea-monitor are exactly this file (monitor/probes/defaults.py).
# Reference: docs/probes.md.

# Probes running at once; past this /probe answers 503.
max_concurrent_probes: 100
# Subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds to leave time to answer.
timeout_offset: 0.5s
# Used when the scrape sends no timeout header and the module sets none.
default_timeout: 10s

# Targets every module may probe unless the module has its own `allow`. A target passes
# if its host matches `hosts` (shell patterns, matched on the name as written), its IP
# literal is in `cidrs`, or the whole target matches a regex in `urls`. Whatever the
# lists say, a probe never targets conea-monitor itself (its own address and port).
allow:
  hosts:
    - "*.conea.io"
    - "*.svc"
    - "*.svc.cluster.local"
    - localhost
  cidrs:
    - 127.0.0.0/8
    - ::1/128

modules:
  http_2xx:  # GET; the body is read up to body_size_limit (1MiB)
    prober: http
    timeout: 5s
  http_post_2xx:
    prober: http
    timeout: 5s
    # A POST can change state on its target: opted in here, and kept off loopback and
    # the cluster's services (where admin APIs listen) by its own narrow allowlist.
    allow:
      hosts: ["*.conea.io"]
    http:
      method: POST
      allow_unsafe_methods: true
  tcp_connect:
    prober: tcp
    timeout: 5s
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
  postgres:
    prober: postgres
    timeout: 5s
    postgres:
      user: conea_monitor
      password_env: CONEA_PROBE_POSTGRES_PASSWORD
      database: postgres
  redis:
    prober: redis
    timeout: 5s
    redis:
      password_env: CONEA_PROBE_REDIS_PASSWORD
"""
