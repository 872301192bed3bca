"""The probe-module file is strict: every mistake names file:line:column and the key."""

from __future__ import annotations

import pathlib

import pytest

from monitor import metrics
from monitor.errors import ConfigError
from monitor.probes import ProbeService, config, defaults

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(text: str) -> config.ProbesFile:
    return config.parse(text, "probes.yml")


def error(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(text)
    return str(exc.value)


def test_bundled_file_is_the_builtin_default() -> None:
    assert (ROOT / "config" / "probes.yml").read_text() == defaults.TEXT
    loaded = ProbeService.from_file(ROOT / "config" / "probes.yml", metrics.Metrics())
    builtin = ProbeService.from_file(None, metrics.Metrics())
    assert loaded.config == builtin.config
    assert {"http_2xx", "http_post_2xx", "tcp_connect", "tls_connect", "postgres", "redis"} <= set(
        builtin.config.modules
    )


def test_bundled_post_module_opts_in_and_is_kept_off_loopback_and_services() -> None:
    builtin = ProbeService.from_file(None, metrics.Metrics()).config
    post = builtin.modules["http_post_2xx"]
    assert post.section().method == "POST" and post.section().allow_unsafe_methods
    assert builtin.allow_for("http_post_2xx").hosts == ["*.conea.io"]
    assert builtin.allow_for("http_post_2xx").cidrs == []
    # every other bundled http module only reads
    for name, module in builtin.modules.items():
        if module.prober == "http" and name != "http_post_2xx":
            assert module.section().method in config.SAFE_METHODS, name


def test_body_size_limit_defaults_to_one_mebibyte() -> None:
    probes = load(
        "modules:\n  web: {prober: http}\n  small: {prober: http, http: {body_size_limit: 10KB}}\n"
    )
    assert probes.modules["web"].section().body_size_limit == 1 << 20
    assert probes.modules["small"].section().body_size_limit == 10 << 10


def test_blackbox_style_module_loads() -> None:
    probes = load(
        """
modules:
  web:
    prober: http
    timeout: 1m30s
    http:
      method: post
      allow_unsafe_methods: true
      valid_status_codes: [200, 204]
      fail_if_header_matches: [{header: Server, regexp: "nginx/0\\\\.", allow_missing: true}]
"""
    )
    web = probes.modules["web"]
    assert web.timeout == 90
    assert web.section().method == "POST"
    assert web.section().fail_if_header_matches[0].regexp.search("nginx/0.9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "modules:\n  web:\n    prober: http\n    htp: {}\n",
            "probes.yml:4:5: modules.web.htp: unknown key",
        ),
        (
            "modules:\n  web:\n    prober: ftp\n",
            "probes.yml:3:13: modules.web.prober: unknown prober 'ftp' "
            "(known: http, tcp, postgres, redis, dns, icmp, grpc",
        ),
        (
            "modules:\n  web:\n    prober: http\n    tcp: {tls: true}\n",
            "probes.yml:4:5: modules.web.tcp: section 'tcp' does not apply to prober 'http'",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http:\n"
            "      fail_if_body_matches_regexp: ['(unclosed']\n",
            "probes.yml:5:37: modules.web.http.fail_if_body_matches_regexp[0]: "
            "invalid regular expression '(unclosed': missing ): (unclosed "
            "(RE2 syntax: no backreferences or lookaround)",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http:\n"
            "      fail_if_header_not_matches: [{header: ETag, regexp: '(?=x)'}]\n",
            "probes.yml:5:59: modules.web.http.fail_if_header_not_matches[0].regexp: "
            "invalid regular expression '(?=x)': invalid perl operator: (?= "
            "(RE2 syntax: no backreferences or lookaround)",
        ),
        (
            "modules:\n  t:\n    prober: tcp\n    tcp:\n"
            "      query_response:\n        - expect: '(a)\\1'\n",
            "probes.yml:6:19: modules.t.tcp.query_response[0].expect: "
            "invalid regular expression '(a)\\\\1': invalid escape sequence: \\1",
        ),
        (
            "allow:\n  urls: ['http://(?<!x)a']\nmodules: {}\n",
            "probes.yml:2:10: allow.urls[0]: invalid regular expression 'http://(?<!x)a'",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http:\n      method: POST\n",
            "probes.yml:5:15: modules.web.http.method: method 'POST' can change state on "
            "the target; only GET and HEAD are allowed unless the module opts in with "
            "'allow_unsafe_methods: true' in its http section (give such a module a "
            "narrow 'allow' list)",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http: {method: delete}\n",
            "probes.yml:4:20: modules.web.http.method: method 'DELETE' can change state",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http: {body_size_limit: 0}\n",
            "probes.yml:4:29: modules.web.http.body_size_limit: "
            "must be between 1 byte and 64MiB, got 0",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http: {body_size_limit: 1GiB}\n",
            "probes.yml:4:29: modules.web.http.body_size_limit: "
            "must be between 1 byte and 64MiB, got '1GiB'",
        ),
        (
            "modules:\n  web:\n    prober: http\n    http: {body_size_limit: lots}\n",
            "probes.yml:4:29: modules.web.http.body_size_limit: "
            "expected a size such as '1MiB' or '512KiB', got 'lots'",
        ),
        (
            "modules:\n  web:\n    prober: http\n    timeout: soon\n",
            "probes.yml:4:14: modules.web.timeout: "
            "not a valid duration 'soon' (use e.g. '30s', '5m', '1h30m')",
        ),
        (
            "modules:\n  web:\n    prober: http\n    timeout: .nan\n",
            "probes.yml:4:14: modules.web.timeout: "
            "not a valid duration nan (use e.g. '30s', '5m', '1h30m')",
        ),
        (
            "timeout_offset: -1\nmodules: {}\n",
            "probes.yml:1:17: timeout_offset: "
            "not a valid duration -1 (a duration cannot be negative)",
        ),
        (
            "modules:\n  db:\n    prober: postgres\n    postgres:\n"
            "      password_env: PGPASS\n      password_file: /run/secrets/pg\n",
            "probes.yml:5:7: modules.db.postgres: give password_env or password_file, not both",
        ),
        (
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      tls_config:\n"
            "        ca_file: /nonexistent/ca.pem\n",
            "probes.yml:6:9: modules.t.tcp.tls_config: ca_file: no such file '/nonexistent/ca.pem'",
        ),
        (
            "allow:\n  cidrs: [10.0.0.0/33]\nmodules: {}\n",
            "probes.yml:2:11: allow.cidrs[0]",
        ),
        (
            "max_concurrent_probes: 0\nmodules: {}\n",
            "probes.yml:1:24: max_concurrent_probes: Input should be greater than 0",
        ),
        ("modules: [a, b]\n", "probes.yml:1:10: modules: Input should be a valid dictionary"),
        ("modules:\n  web: {prober: http\n", "probes.yml:3:1: invalid YAML"),
        ("- just a list\n", "probes.yml: expected a mapping with 'modules:'"),
    ],
)
def test_invalid_files_name_line_and_key(text: str, message: str) -> None:
    assert message in error(text)


def test_missing_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"probes\.yml: cannot read probe modules"):
        ProbeService.from_file(tmp_path / "probes.yml", metrics.Metrics())


def test_unreadable_client_key_is_a_config_error_at_load(tmp_path: pathlib.Path) -> None:
    bogus = tmp_path / "client.pem"
    bogus.write_text("not a certificate\n")
    path = tmp_path / "probes.yml"
    path.write_text(
        "modules:\n  mtls:\n    prober: http\n    http:\n      tls_config:\n"
        f"        cert_file: {bogus}\n        key_file: {bogus}\n"
    )
    with pytest.raises(ConfigError, match=r"modules\.mtls\.http\.tls_config: cannot load"):
        ProbeService.from_file(path, metrics.Metrics())


def test_every_duration_field_reads_the_one_grammar() -> None:
    """Prometheus forms (``1d``, ``1h30m``) read in a probe file as Go forms do."""
    loaded = load(
        "timeout_offset: 500ms\ndefault_timeout: 1m30s\n"
        "modules:\n  web: {prober: http, timeout: 1.5s}\n  slow: {prober: tcp, timeout: 1d}\n"
        "  quick: {prober: tcp, timeout: 3}\n"
    )
    assert (loaded.timeout_offset, loaded.default_timeout) == (0.5, 90.0)
    timeouts = {name: module.timeout for name, module in loaded.modules.items()}
    assert timeouts == {"web": 1.5, "slow": 86400.0, "quick": 3.0}


@pytest.mark.parametrize(
    ("value", "size"),
    [(4096, 4096), ("512KiB", 512 << 10), ("1MiB", 1 << 20), ("2MB", 2 << 20), ("64MiB", 64 << 20)],
)
def test_sizes(value: str | int, size: int) -> None:
    assert config.parse_size(value) == size


def test_scrape_timeout_rules() -> None:
    probes = ProbeService(
        load("modules:\n  a: {prober: tcp, timeout: 3s}\n  b: {prober: tcp}\n"),
        metrics.Metrics(),
        "probes.yml",
    )
    a, b = probes.config.modules["a"], probes.config.modules["b"]
    assert probes.timeout(a, None) == 3  # module timeout without a header
    assert probes.timeout(b, None) == 10  # default_timeout
    assert probes.timeout(b, "10") == 9.5  # header minus the 0.5s offset
    assert probes.timeout(a, "10") == 3  # capped by the module
    assert probes.timeout(a, "2") == 1.5
    assert probes.timeout(b, "0.4") == 0.2  # offset larger than the timeout: half of it


def test_relative_paths_are_relative_to_the_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("unused\n")
    path = tmp_path / "probes.yml"
    path.write_text(
        "modules:\n  t:\n    prober: tcp\n    tcp: {tls_config: {ca_file: certs/ca.pem}}\n"
        "  db:\n    prober: postgres\n    postgres: {password_file: secret}\n"
    )
    probes = config.load(path)
    assert probes.modules["t"].section().tls_config.ca_file == tmp_path / "certs" / "ca.pem"
    assert probes.modules["db"].section().password_file == tmp_path / "secret"


def test_reload_swaps_modules_and_keeps_them_on_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "probes.yml"
    path.write_text("modules:\n  one: {prober: tcp}\n")
    probes = ProbeService.from_file(path, metrics.Metrics())
    path.write_text("modules:\n  one: {prober: tcp}\n  two: {prober: http}\n")
    probes.reload(path)
    assert set(probes.config.modules) == {"one", "two"}
    path.write_text("modules:\n  three: {prober: smtp}\n")
    with pytest.raises(ConfigError, match=r"probes\.yml:2:19: modules\.three\.prober"):
        probes.reload(path)
    assert set(probes.config.modules) == {"one", "two"}
