"""Fixtures for probe tests: real target servers and the probe service under uvicorn."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.probes import servers


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Targets]:
    with servers.targets(tmp_path_factory.mktemp("targets"), slow_seconds=5.0) as found:
        yield found


def modules_yaml(ca_file: pathlib.Path, client_pem: pathlib.Path) -> str:
    return f"""
max_concurrent_probes: 20
timeout_offset: 0.5s
allow:
  hosts: [localhost]
  cidrs: [127.0.0.0/8]
modules:
  http_2xx:
    prober: http
    timeout: 5s
  http_post_2xx:
    prober: http
    http:
      method: POST
      allow_unsafe_methods: true
      body: hello
  http_small_body:
    prober: http
    http:
      body_size_limit: 64KiB
      fail_if_body_not_matches_regexp: ["^a+$"]
  http_catastrophic:
    prober: http
    http:
      fail_if_body_matches_regexp: ["(a+)+b"]
      fail_if_header_matches: [{{header: X-Letters, regexp: "(a+)+b", allow_missing: true}}]
  tcp_catastrophic:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "(a+)+b"
  http_checks:
    prober: http
    http:
      fail_if_body_not_matches_regexp: ["status: healthy"]
      fail_if_header_not_matches:
        - {{header: X-Health, regexp: "^green$"}}
  http_no_redirect:
    prober: http
    http:
      follow_redirects: false
      valid_status_codes: [302]
  https_ca:
    prober: http
    http:
      fail_if_not_ssl: true
      tls_config: {{ca_file: "{ca_file}"}}
  https_system_ca:
    prober: http
  https_client_cert:
    prober: http
    http:
      tls_config: {{ca_file: "{ca_file}", cert_file: "{client_pem}", key_file: "{client_pem}"}}
  banner_silent:
    prober: tcp
    timeout: 1s
    tcp:
      query_response:
        - expect: "^SSH-2.0-"
  http_internal_only:
    prober: http
    allow:
      hosts: ["*.internal"]
  tcp_connect:
    prober: tcp
    timeout: 2s
  tls_ca:
    prober: tcp
    tcp:
      tls: true
      tls_config: {{ca_file: "{ca_file}", server_name: localhost}}
  tls_connect:
    prober: tcp
    tcp:
      tls: true
  banner:
    prober: tcp
    tcp:
      query_response:
        - expect: "^SSH-2.0-"
        - expect: "PING :(\\\\w+)"
          send: "PONG ${{1}}"
        - expect: "^GOT PONG token42$"
  banner_wrong:
    prober: tcp
    tcp:
      query_response:
        - expect: "^220 .*SMTP"
"""


@pytest.fixture(scope="module")
def service(targets: servers.Targets) -> Iterator[servers.Service]:
    with servers.service(modules_yaml(targets.ca_file, targets.client_pem)) as running:
        yield running
