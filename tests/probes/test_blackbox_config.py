"""A blackbox_exporter ``blackbox.yml`` loads as a probe file, and means what it meant.

The module forms below are those of blackbox_exporter's ``example.yml`` and
``config/testdata/*.yml`` (its http, tcp and grpc modules), written out here. Where
this file differs from them, a comment says why: file paths point at files that exist
(conea-monitor reads certificates when the file loads), and a POST module opts in
with ``allow_unsafe_methods`` (conea-monitor's own safety rule, checked below).
"""

from __future__ import annotations

import asyncio
import base64
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from monitor import metrics
from monitor.errors import ConfigError, ProbeError
from monitor.probes import ProbeService, blackbox, config
from monitor.probes import targets as targets_module
from tests.probes import servers

EXAMPLE = """
modules:
  http_2xx_example:
    prober: http
    timeout: 5s
    http:
      valid_http_versions: ["HTTP/1.1", "HTTP/2.0"]
      valid_status_codes: []  # Defaults to 2xx
      method: GET
      headers:
        Host: vhost.example.com
        Origin: example.com
      follow_redirects: true
      fail_if_ssl: false
      fail_if_not_ssl: false
      fail_if_body_matches_regexp:
        - "Could not connect to database"
      fail_if_body_not_matches_regexp:
        - "Download the latest version here"
      fail_if_header_matches: # Verifies that no cookies are set
        - header: Set-Cookie
          allow_missing: true
          regexp: '.*'
      fail_if_header_not_matches:
        - header: Access-Control-Allow-Origin
          regexp: '(\\*|example\\.com)'
      tls_config:
        insecure_skip_verify: false
      preferred_ip_protocol: "ip4" # defaults to "ip6"
      ip_protocol_fallback: false  # no fallback to "ip6"
  http_post_2xx:
    prober: http
    timeout: 5s
    http:
      method: POST
      allow_unsafe_methods: true  # conea-monitor's opt-in for methods that change state
      headers:
        Content-Type: application/json
      body: '{}'
  http_basic_auth_example:
    prober: http
    timeout: 5s
    http:
      method: POST
      allow_unsafe_methods: true
      headers:
        Host: "login.example.com"
      basic_auth:
        username: "username"
        password: "mysecret"
  http_custom_ca_example:
    prober: http
    http:
      method: GET
      tls_config:
        ca_file: "certs/my_cert.crt"  # /certs/my_cert.crt in example.yml
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
  tcp_connect_example:
    prober: tcp
    timeout: 5s
  imap_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "OK.*STARTTLS"
        - send: ". STARTTLS"
        - expect: "OK"
        - starttls: true
        - send: ". capability"
        - expect: "CAPABILITY IMAP4rev1"
  smtp_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^220 ([^ ]+) ESMTP (.+)$"
        - send: "EHLO prober\\r"
        - expect: "^250-STARTTLS"
        - send: "STARTTLS\\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\\r"
        - expect: "^250-AUTH"
        - send: "QUIT\\r"
  irc_banner_example:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - send: "NICK prober"
        - send: "USER prober prober prober :prober"
        - expect: "PING :([^ ]+)"
          send: "PONG ${1}"
        - expect: "^:[^ ]+ 001"
  rabbitmq:
    prober: tcp
    timeout: 30s
    tcp:
      query_response:
        - send: "HELO\\r"
        - send: "\\r"
        - send: "\\r"
        - send: "\\r"
        - expect: "AMQP"
      tls: true
      tls_config:
        insecure_skip_verify: false
        ca_file: "certs/CA_cert.crt"  # /etc/blackbox_exporter/CA_cert.crt in example.yml
  postgresql:
    prober: tcp
    tcp:
      query_response:
      - send: !!binary AAAACATSFi8= # 0x00 0x00 0x00 0x08 0x04 0xD2 0x16 0x2F - SSLRequest
      - expect_bytes: S # 0x53 - Reply will be 'S' if SSL is enabled, and 'N' if it is not.
      - starttls: true
"""

GOOD = """
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
  http_post_2xx:
    prober: http
    timeout: 5s
    http:
      method: POST
      allow_unsafe_methods: true
      basic_auth:
        username: "username"
        password: "mysecret"
      body_size_limit: 1MB
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^+OK"
      tls: true
      tls_config:
        insecure_skip_verify: false
  ssh_banner:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
      - expect: "^SSH-2.0-"
  http_header_match_origin:
    prober: http
    timeout: 5s
    http:
      method: GET
      headers:
        Origin: example.com
      fail_if_header_not_matches:
      - header: Access-Control-Allow-Origin
        regexp: '(\\*|example\\.com)'
        allow_missing: false
  grpc_health:
    prober: grpc
    grpc:
      service: example
      metadata:
        key:
          - value1
          - value2
        authorization:
          - "Bearer token"
"""


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    """``text`` as ``blackbox.yml`` in ``tmp_path``, next to the CA files it names."""
    (tmp_path / "certs").mkdir(exist_ok=True)
    ca = trustme.CA()
    for name in ("my_cert.crt", "CA_cert.crt"):
        ca.cert_pem.write_to_path(str(tmp_path / "certs" / name))
    path = tmp_path / "blackbox.yml"
    path.write_text(text)
    return path


def parse(text: str) -> config.ProbesFile:
    return config.parse(text, "blackbox.yml")


def test_example_yml_http_and_tcp_modules_load_and_mean_what_they_say(
    tmp_path: pathlib.Path,
) -> None:
    modules = config.load(write(tmp_path, EXAMPLE)).modules
    web = modules["http_2xx_example"].section()
    assert web.valid_http_versions == ["HTTP/1.1", "HTTP/2.0"]
    assert web.accepts_version(1, 1) and not web.accepts_version(1, 0)
    assert web.headers == {"Host": "vhost.example.com", "Origin": "example.com"}
    assert (web.preferred_ip_protocol, web.ip_protocol_fallback) == ("ip4", False)
    assert web.follow_redirects and web.valid_status_codes == []
    assert web.fail_if_body_matches_regexp[0].search("Could not connect to database")
    assert web.fail_if_header_matches[0].header == "Set-Cookie"
    assert web.fail_if_header_matches[0].allow_missing
    assert web.fail_if_header_not_matches[0].regexp.fullmatch("*")
    assert modules["http_2xx_example"].timeout == 5

    post = modules["http_post_2xx"].section()
    assert (post.method, post.body) == ("POST", "{}")
    auth = modules["http_basic_auth_example"].section()
    expected = "Basic " + base64.b64encode(b"username:mysecret").decode()
    assert auth.authorization_header() == expected
    assert modules["http_custom_ca_example"].section().tls_config.ca_file == (
        tmp_path / "certs" / "my_cert.crt"
    )

    assert modules["tls_connect"].section().tls
    assert modules["tcp_connect_example"].section().query_response == []
    imap = modules["imap_starttls"].section().query_response
    assert [step.starttls for step in imap] == [False, False, False, True, False, False]
    assert imap[1].send == ". STARTTLS"
    assert modules["smtp_starttls"].section().query_response[1].send == "EHLO prober\r"
    irc = modules["irc_banner_example"].section().query_response[2]
    assert irc.expect.search("PING :abc") and irc.send == "PONG ${1}"
    rabbit = modules["rabbitmq"]
    assert rabbit.timeout == 30 and rabbit.section().tls
    postgres = modules["postgresql"].section().query_response
    assert postgres[0].send == bytes([0, 0, 0, 8, 4, 0xD2, 0x16, 0x2F])
    assert postgres[1].expect_bytes == b"S"
    assert postgres[2].starttls


def test_testdata_good_file_http_tcp_and_grpc_modules_load(tmp_path: pathlib.Path) -> None:
    modules = config.load(write(tmp_path, GOOD)).modules
    assert modules["http_2xx"].section() == config.HTTPConfig()  # "http:" with nothing
    assert modules["http_post_2xx"].section().body_size_limit == 1 << 20
    # "^+OK" is "^" repeated, then "OK": a line starting with OK (RE2 reads it as Go does)
    pop3s = modules["pop3s_banner"].section().query_response[0].expect
    assert pop3s.search("OK ready") and not pop3s.search("+OK ready")
    health = modules["grpc_health"].section()
    assert health.service == "example" and not health.tls
    assert {
        key: [v.get_secret_value() for v in values] for key, values in health.metadata.items()
    } == {
        "key": ["value1", "value2"],
        "authorization": ["Bearer token"],
    }


def test_post_without_the_opt_in_names_it() -> None:
    """conea-monitor's one deliberate difference: a method that changes state needs
    ``allow_unsafe_methods: true`` (blackbox's http_post_2xx as written)."""
    text = "modules:\n  http_post_2xx:\n    prober: http\n    http:\n      method: POST\n"
    with pytest.raises(ConfigError, match=r"blackbox\.yml:5:15: .*allow_unsafe_methods: true"):
        parse(text)


def test_secrets_never_show_on_the_debug_page_or_in_errors(tmp_path: pathlib.Path) -> None:
    example = ProbeService.from_file(write(tmp_path, EXAMPLE), metrics.Metrics())
    good = ProbeService.from_file(write(tmp_path, GOOD), metrics.Metrics())
    page = example.module_yaml("http_basic_auth_example") + good.module_yaml("grpc_health")
    assert "mysecret" not in page and "Bearer token" not in page
    assert "username: username" in page  # not a secret
    bad = "modules:\n  a:\n    prober: http\n    http:\n      bearer_token: [s3cret-token]\n"
    with pytest.raises(ConfigError) as exc:
        parse(bad)
    assert "s3cret-token" not in str(exc.value)
    assert "blackbox.yml:5:21: modules.a.http.bearer_token" in str(exc.value)


UNSUPPORTED = [  # (prober, the option as written, where the error points, the option)
    ("http", "oauth2: {client_id: c, token_url: 'https://x/token'}", "oauth2", "oauth2"),
    ("http", "http_headers: {X-Key: {files: [/k.txt]}}", "http_headers", "http_headers"),
    ("http", "proxy_url: 'http://127.0.0.1:3128'", "proxy_url", "proxy_url"),
    ("http", "no_proxy: example.com", "no_proxy", "no_proxy"),
    ("http", "proxy_from_environment: true", "proxy_from_environment", "proxy_from_environment"),
    ("http", "proxy_connect_header: {P: [x]}", "proxy_connect_header", "proxy_connect_header"),
    ("http", "skip_resolve_phase_with_proxy: true", "skip_resolve_phase_with_proxy", None),
    ("http", "body_file: /files/body.txt", "body_file", "body_file"),
    ("http", "compression: gzip", "compression", "compression"),
    ("http", "enable_http3: true", "enable_http3", "enable_http3"),
    ("http", "fail_if_body_json_matches_cel: 'body.a'", "fail_if_body_json_matches_cel", None),
    ("http", "fail_if_body_json_not_matches_cel: 'b'", "fail_if_body_json_not_matches_cel", None),
    ("http", "tls_config: {ca: PEM}", "tls_config.ca", "ca"),
    ("http", "tls_config: {cert: PEM}", "tls_config.cert", "cert"),
    ("http", "tls_config: {key: PEM}", "tls_config.key", "key"),
    ("http", "tls_config: {ca_ref: name}", "tls_config.ca_ref", "ca_ref"),
    ("http", "tls_config: {cert_ref: name}", "tls_config.cert_ref", "cert_ref"),
    ("http", "tls_config: {key_ref: name}", "tls_config.key_ref", "key_ref"),
    ("http", "basic_auth: {username: u, password_ref: n}", "basic_auth.password_ref", None),
    ("http", "basic_auth: {username_ref: n}", "basic_auth.username_ref", "username_ref"),
    ("http", "authorization: {credentials_ref: n}", "authorization.credentials_ref", None),
    ("tcp", "tls_config: {ca: PEM}", "tls_config.ca", "ca"),
    ("grpc", "tls_config: {key_ref: name}", "tls_config.key_ref", "key_ref"),
]


@pytest.mark.parametrize(("prober", "option", "where", "key"), UNSUPPORTED)
def test_each_unsupported_blackbox_option_is_named(
    prober: str, option: str, where: str, key: str | None
) -> None:
    text = f"modules:\n  x:\n    prober: {prober}\n    {prober}:\n      {option}\n"
    with pytest.raises(ConfigError) as exc:
        parse(text)
    name = key or where.rsplit(".", 1)[-1]
    assert str(exc.value).startswith("blackbox.yml:5:")
    assert str(exc.value).endswith(
        f": modules.x.{prober}.{where}: "
        f"blackbox_exporter option {name!r} is not supported by conea-monitor"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "modules:\n  u:\n    prober: unix\n    unix: {query_response: [{send: PING}]}\n",
            "blackbox.yml:3:13: modules.u.prober: blackbox_exporter prober 'unix' is not "
            "supported by conea-monitor\nblackbox.yml:4:5: modules.u.unix: blackbox_exporter "
            "option 'unix' is not supported by conea-monitor",
        ),
        (
            "modules:\n  w:\n    prober: websocket\n",
            "blackbox.yml:3:13: modules.w.prober: blackbox_exporter prober 'websocket' is not "
            "supported by conea-monitor",
        ),
        (  # a typo is still a typo
            "modules:\n  x:\n    prober: http\n    http: {folow_redirects: false}\n",
            "blackbox.yml:4:12: modules.x.http.folow_redirects: unknown key",
        ),
        (
            "modules:\n  x:\n    prober: http\n    http: {enable_http2: true}\n",
            "blackbox.yml:4:26: modules.x.http.enable_http2: conea-monitor's http prober speaks "
            "HTTP/1.1 only; remove enable_http2 or set it to false",
        ),
        (  # blackbox's invalid-no-versions-http3-enabled.yml and its HTTP/3 rule
            "modules:\n  x:\n    prober: http\n    http:\n"
            "      valid_http_versions: [HTTP/1.1, HTTP/3.0]\n",
            "blackbox.yml:5:28: modules.x.http.valid_http_versions: 'HTTP/3.0': HTTP/3 needs "
            "enable_http3, which conea-monitor does not support",
        ),
        (  # blackbox-bad2.yml
            "modules:\n  http_post_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
            "      method: GET\n      bearer_token: foo\n      bearer_token_file: foo\n"
            "      basic_auth:\n        username: username\n        password: mysecret\n",
            "blackbox.yml:6:7: modules.http_post_2xx.http: give at most one of basic_auth, "
            "bearer_token, bearer_token_file",
        ),
        (  # invalid-http-header-match.yml
            "modules:\n  h:\n    prober: http\n    http:\n      fail_if_header_not_matches:\n"
            "        - header: Access-Control-Allow-Origin\n          allow_missing: false\n",
            "blackbox.yml:6:11: modules.h.http.fail_if_header_not_matches[0].regexp: "
            "Field required",
        ),
        (  # invalid-tcp-query-response-regexp.yml
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n"
            "        - expect: ':['\n",
            "blackbox.yml:6:19: modules.t.tcp.query_response[0].expect: invalid regular "
            "expression ':['",
        ),
        (  # invalid-prober.yml
            "modules:\n  p:\n    prober: invalid\n",
            "blackbox.yml:3:13: modules.p.prober: unknown prober 'invalid'",
        ),
        (
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n"
            "        - {expect: 'x', expect_bytes: 'x'}\n",
            "blackbox.yml:6:11: modules.t.tcp.query_response[0]: expect and expect_bytes "
            "are mutually exclusive",
        ),
        (
            "modules:\n  x:\n    prober: http\n    http: {preferred_ip_protocol: ipv4}\n",
            "blackbox.yml:4:35: modules.x.http.preferred_ip_protocol: Input should be 'ip4' "
            "or 'ip6'",
        ),
        (
            "modules:\n  x:\n    prober: http\n    http:\n      tls_config:\n"
            "        {min_version: TLS13, max_version: TLS12}\n",
            "blackbox.yml:6:9: modules.x.http.tls_config: min_version TLS13 is above "
            "max_version TLS12",
        ),
        (
            "modules:\n  g:\n    prober: grpc\n    grpc: {tls: true, tls_config: "
            "{insecure_skip_verify: true}}\n",
            "blackbox.yml:4:35: modules.g.grpc.tls_config: insecure_skip_verify is not "
            "supported by the grpc prober",
        ),
    ],
)
def test_blackbox_files_that_fail(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(text)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("loc", "known"),
    [
        (("modules", "d", "dns", "dns_over_tls"), True),
        (("modules", "d", "dns", "validate_answer_rrs", "fail_if_all_match_regexp"), True),
        (("modules", "i", "icmp", "dont_fragment"), True),
        (("modules", "i", "icmp", "ttl"), True),
        (("modules", "t", "tcp", "query_response", 0, "labels"), True),
        (("modules", "i", "icmp", "tll"), False),
        (("modules", "x", "postgres", "oauth2"), False),
        (("allow", "oauth2"), False),
    ],
)
def test_option_table_knows_dns_and_icmp_names_too(loc: tuple[str | int, ...], known: bool) -> None:
    assert (blackbox.unsupported(loc) is not None) == known


# Probes with blackbox forms, against local servers


@dataclass
class Seen:
    authorization: list[str | None] = field(default_factory=list)
    tcp: list[bytes] = field(default_factory=list)


@dataclass
class Local:
    http_port: int
    tcp_port: int
    seen: Seen


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    seen = Seen()
    ports = [servers.services.free_port() for _ in range(2)]
    lt = servers.LoopThread()

    async def auth(request: web.Request) -> web.Response:
        seen.authorization.append(request.headers.get("Authorization"))
        return web.Response(text="ok\n")

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/auth")

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def postgres_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.tcp.append(await reader.readexactly(9))  # the SSLRequest and a newline
        writer.write(b"N")  # no TLS here
        await writer.drain()
        writer.close()

    async def start() -> tuple[web.AppRunner, asyncio.Server]:
        app = web.Application()
        app.router.add_get("/auth", auth)
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/redirect-to", redirect_to)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", ports[0]).start()
        return runner, await asyncio.start_server(postgres_like, "127.0.0.1", ports[1])

    async def stop(runner: web.AppRunner, server: asyncio.Server) -> None:
        server.close()
        await server.wait_closed()
        await runner.cleanup()

    runner, server = lt.run(start())
    try:
        yield Local(ports[0], ports[1], seen)
    finally:
        lt.run(stop(runner, server))
        lt.close()


@pytest.fixture(scope="module")
def probes(
    tmp_path_factory: pytest.TempPathFactory, targets: servers.Targets
) -> Iterator[servers.Service]:
    token = tmp_path_factory.mktemp("secrets") / "token"
    token.write_text("t0ken-from-file\n")
    password = token.parent / "password"
    password.write_text("pa55-from-file\n")
    text = f"""
# conea-monitor's allowlist, on top of blackbox's modules
allow: {{cidrs: [127.0.0.0/8], hosts: [localhost]}}
modules:
  tls12_at_most:
    prober: tcp
    tcp: {{tls: true, tls_config: {{ca_file: "{targets.ca_file}", max_version: TLS12}}}}
  tls13_at_least:
    prober: tcp
    tcp: {{tls: true, tls_config: {{ca_file: "{targets.ca_file}", min_version: TLS13}}}}
  from_loopback:
    prober: tcp
    tcp: {{source_ip_address: 127.0.0.1}}
  from_elsewhere:
    prober: tcp
    tcp: {{source_ip_address: 192.0.2.1}}
  ssh_labels:
    prober: tcp
    tcp:
      query_response:
        - expect: "^SSH-2.0-(.+)$"
          labels: [{{name: software, value: "${{1}}"}}]
  basic:
    prober: http
    http:
      basic_auth: {{username: "username", password: "mysecret"}}
  basic_file:
    prober: http
    http:
      basic_auth: {{username: "monitor", password_file: "{password}"}}
  bearer_file:
    prober: http
    http:
      bearer_token_file: "{token}"
  authorization:
    prober: http
    http:
      authorization: {{type: Token, credentials: abc123}}
  http1_only:
    prober: http
    http: {{valid_http_versions: ["HTTP/1.1"]}}
  http_ip4:
    prober: http
    http: {{preferred_ip_protocol: ip4}}
  http_ip6_only:
    prober: http
    http: {{preferred_ip_protocol: ip6, ip_protocol_fallback: false}}
  http2_only:
    prober: http
    http: {{valid_http_versions: ["HTTP/2.0"]}}
  no_follow:
    prober: http
    http: {{no_follow_redirects: true, valid_status_codes: [302]}}
  follow:
    prober: http
    http: {{no_follow_redirects: false}}
  postgres_no_tls:
    prober: tcp
    tcp:
      query_response:
      - send: !!binary AAAACATSFi8=
      - expect_bytes: N
  postgres_wants_tls:
    prober: tcp
    tcp:
      query_response:
      - send: !!binary AAAACATSFi8=
      - expect_bytes: S
"""
    with servers.service(text) as running:
        yield running


def test_basic_auth_is_sent(probes: servers.Service, local: Local) -> None:
    assert probes.probe("basic", f"http://127.0.0.1:{local.http_port}/auth").success
    assert (
        local.seen.authorization[-1] == "Basic " + base64.b64encode(b"username:mysecret").decode()
    )


def test_credentials_stay_with_their_origin_on_redirect(
    probes: servers.Service, local: Local
) -> None:
    same = f"http://127.0.0.1:{local.http_port}/auth"
    other = f"http://localhost:{local.http_port}/auth"
    base = f"http://127.0.0.1:{local.http_port}/redirect-to?url="
    assert probes.probe("basic", base + same).success
    assert local.seen.authorization[-1] is not None
    result = probes.probe("basic", base + other)
    assert result.success and result.value("probe_http_redirects") == 1
    assert local.seen.authorization[-1] is None  # another host: not sent


def test_basic_auth_password_file_is_read_at_each_probe(
    probes: servers.Service, local: Local
) -> None:
    module = probes.probes.config.modules["basic_file"].section()
    password_file = module.basic_auth.password_file
    url = f"http://127.0.0.1:{local.http_port}/auth"
    assert probes.probe("basic_file", url).success
    assert (
        local.seen.authorization[-1]
        == "Basic " + base64.b64encode(b"monitor:pa55-from-file").decode()
    )
    password_file.write_text("rotated\n")
    assert probes.probe("basic_file", url).success
    assert local.seen.authorization[-1] == "Basic " + base64.b64encode(b"monitor:rotated").decode()
    password_file.unlink()
    response = probes.get("basic_file", url, debug="true")
    assert "probe_success 0.0" in response.text
    assert f"no credentials: cannot read password_file {str(password_file)!r}" in response.text
    password_file.write_text("pa55-from-file\n")


def test_missing_secret_files_fail_the_load() -> None:
    for section in (
        "bearer_token_file: /nonexistent/token",
        "basic_auth: {username: u, password_file: /nonexistent/token}",
        "authorization: {credentials_file: /nonexistent/token}",
    ):
        with pytest.raises(ConfigError, match=r"_file: no such file '/nonexistent/token'"):
            parse(f"modules:\n  a:\n    prober: http\n    http: {{{section}}}\n")


def test_bearer_token_file_is_sent(probes: servers.Service, local: Local) -> None:
    assert probes.probe("bearer_file", f"http://127.0.0.1:{local.http_port}/auth").success
    assert local.seen.authorization[-1] == "Bearer t0ken-from-file"


def test_authorization_type_and_credentials_are_sent(probes: servers.Service, local: Local) -> None:
    assert probes.probe("authorization", f"http://127.0.0.1:{local.http_port}/auth").success
    assert local.seen.authorization[-1] == "Token abc123"


def test_valid_http_versions_are_enforced(probes: servers.Service, local: Local) -> None:
    url = f"http://127.0.0.1:{local.http_port}/auth"
    assert probes.probe("http1_only", url).success
    refused = probes.probe("http2_only", url)
    assert not refused.success
    assert refused.value("probe_http_status_code") == 200
    assert refused.value("probe_http_version") == 1.1


def test_no_follow_redirects_is_honoured(probes: servers.Service, local: Local) -> None:
    url = f"http://127.0.0.1:{local.http_port}/redirect"
    stopped = probes.probe("no_follow", url)
    assert stopped.success
    assert stopped.value("probe_http_status_code") == 302
    assert stopped.value("probe_http_redirects") == 0
    followed = probes.probe("follow", url)
    assert followed.value("probe_http_status_code") == 200
    assert followed.value("probe_http_redirects") == 1


def test_tls_versions_bound_the_handshake(
    probes: servers.Service, targets: servers.Targets
) -> None:
    target = f"localhost:{targets.https_port}"
    capped = probes.probe("tls12_at_most", target)
    assert capped.success
    assert capped.value("probe_tls_version_info", version="TLS 1.2") == 1
    assert probes.probe("tls13_at_least", target).value("probe_tls_version_info", version="TLS 1.3")


def test_source_ip_address_is_bound(probes: servers.Service, targets: servers.Targets) -> None:
    target = f"127.0.0.1:{targets.http_port}"
    assert probes.probe("from_loopback", target).success
    response = probes.get("from_elsewhere", target, debug="true")
    assert "probe_success 0.0" in response.text
    assert "connect failed" in response.text  # 192.0.2.1 is not an address of this host


def test_expect_labels_are_reported(probes: servers.Service, targets: servers.Targets) -> None:
    result = probes.probe("ssh_labels", f"127.0.0.1:{targets.banner_port}")
    assert result.success
    assert result.value("probe_expect_info", software="conea-test") == 1


def test_http_preferred_ip_protocol(probes: servers.Service, local: Local) -> None:
    assert probes.probe("http_ip4", f"http://localhost:{local.http_port}/auth").success
    # localhost has no IPv6 address here, or one nothing listens on: either way it fails
    assert not probes.probe("http_ip6_only", f"http://localhost:{local.http_port}/auth").success
    literal = probes.get("http_ip6_only", f"http://127.0.0.1:{local.http_port}/auth", debug="true")
    assert "no address to dial over ip6 (ip_protocol_fallback is off)" in literal.text


def test_http_reports_the_address_hash(probes: servers.Service, local: Local) -> None:
    result = probes.probe("http1_only", f"http://localhost:{local.http_port}/auth")
    assert result.value("probe_ip_addr_hash") == targets_module.ip_hash("127.0.0.1")


def test_binary_send_and_expect_bytes(probes: servers.Service, local: Local) -> None:
    target = f"127.0.0.1:{local.tcp_port}"
    result = probes.probe("postgres_no_tls", target)
    assert result.success
    assert local.seen.tcp[-1] == bytes([0, 0, 0, 8, 4, 0xD2, 0x16, 0x2F]) + b"\n"
    assert result.value("probe_failed_due_to_bytes") == 0
    wrong = probes.probe("postgres_wants_tls", target)
    assert not wrong.success
    assert wrong.value("probe_failed_due_to_bytes") == 1


def test_blackbox_file_without_allow_loads_and_refuses_every_target(
    tmp_path: pathlib.Path,
) -> None:
    probes = ProbeService.from_file(write(tmp_path, GOOD), metrics.Metrics())
    with pytest.raises(ProbeError, match="allows no targets; list them under 'allow'"):
        asyncio.run(probes.probe("http_2xx", "http://127.0.0.1:1/"))
