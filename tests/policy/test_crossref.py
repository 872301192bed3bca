"""``check`` resolves cross-references: a corpus of broken files (tests/fixtures/broken/),
one user mistake each, with the exact message; start-up refuses the errors."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor import cli as monitor_cli
from monitor import settings as settings_mod
from monitor import wiring
from monitor.policy import PolicyLoadError, rules

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "fixtures" / "broken"
HER = "rules/app.yml:4: its labels are severity, namespace, job, service"


Check = Callable[..., tuple[int, list[str], str]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Check]:
    monkeypatch.chdir(BROKEN)
    monkeypatch.setenv("XREF_ONCALL_URL", "https://hooks.example.com/oncall")
    monkeypatch.setenv("XREF_PG_PASSWORD", "not-shown")
    for name in ("XREF_NEVER_SET_URL", "XREF_NEVER_SET_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def check(*args: str) -> tuple[int, list[str], str]:
        code = monitor_cli.main(["check", *args])
        captured = capsys.readouterr()
        return code, captured.err.splitlines(), captured.out

    yield check


# (file, settings, expected stderr without its last FAILED line; exit status 1) or
# warnings only (exit 0, 1 with --strict).
ERRORS = [
    ("unknown-notifier.yaml", "conea-monitor.yml",
     "unknown-notifier.yaml:7:44: policies[0].steps[0][0].with.notifier: unknown notifier "
     "'pagerduty' (known: oncall); notifiers are defined under notifiers in the settings"),
    ("unknown-notifier-templated.yaml", "conea-monitor.yml",
     "unknown-notifier-templated.yaml:7:44: policies[0].steps[0][0].with.notifier: unknown "
     "notifier 'db-pager' (rendered from '{{ labels.team }}-pager') (known: oncall); "
     "notifiers are defined under notifiers in the settings"),
    ("unknown-postgres-target.yaml", "conea-monitor.yml",
     "unknown-postgres-target.yaml:8:26: policies[0].steps[0][0].with.target: unknown postgres "
     "target 'conea-prod' (known: conea-production); postgres targets are defined under "
     "postgres_targets in the settings"),
    ("unknown-postgres-target-matcher.yaml", "conea-monitor.yml",
     "unknown-postgres-target-matcher.yaml:8:26: policies[0].steps[0][0].with.target: unknown "
     "postgres target 'staging' (rendered from '{{ labels.cluster }}') (known: "
     "conea-production); postgres targets are defined under postgres_targets in the settings"),
    ("unknown-action.yaml", "conea-monitor.yml",
     "unknown-action.yaml:7:19: policies[0].steps[0][0].action: unknown action "
     "'kubernetes.scael' (known: http.request, kubernetes.delete_pod, kubernetes.restart, "
     "kubernetes.rollback, kubernetes.scale, kubernetes.set_env, log, notify, "
     "postgres.cancel_long_queries, postgres.terminate_idle_in_transaction, "
     "postgres.vacuum_analyze)"),
    ("bad-param-after-render.yaml", "conea-monitor.yml",
     "bad-param-after-render.yaml:7:54: policies[0].steps[0][0].with.replicas: rendered for the "
     'alert {alertname="DeploymentUnavailable", replicas="many", severity="critical"}: input '
     "should be a valid integer, unable to parse string as an integer, got 'many'"),
    ("bad-duration-after-render.yaml", "conea-monitor.yml",
     "bad-duration-after-render.yaml:8:74: policies[0].steps[0][0].with.older_than: rendered "
     'for the alert {alertname="PostgresIdleInTransaction", idle_for="five minutes", '
     'severity="warning", team="db"}: not a valid duration \'five minutes\' (use e.g. \'30s\', '
     "'5m', '1h30m')"),
    ("bad-param-from-matcher.yaml", "conea-monitor.yml",
     "bad-param-from-matcher.yaml:7:49: policies[0].steps[0][0].with.min: rendered for the "
     'alert {alertname="DeploymentUnavailable", replicas="many", severity="critical", '
     "tier=\"gold\"}: input should be a valid integer, unable to parse string as an integer, "
     "got 'gold'"),
    ("render-error.yaml", "conea-monitor.yml",
     "render-error.yaml:7:40: policies[0].steps[0][0].with.message: cannot render "
     "'{{ labels.replicas / 2 }}': unsupported operand type(s) for /: 'str' and 'int' "
     '(rendered for the alert {alertname="DeploymentUnavailable", replicas="many", '
     'severity="critical"})'),
    ("bad-target-namespace.yaml", "conea-monitor.yml",
     "bad-target-namespace.yaml:5:43: policies[0].target.namespace: target namespace "
     "'HighErrorRate' is not a DNS-1123 label (rendered for the alert "
     '{alertname="HighErrorRate", severity="critical"})'),
]  # fmt: skip

WARNINGS = [
    ("label-typo.yaml", "conea-monitor.yml",
     "label-typo.yaml:9:13: policies[0].target.name: label 'deploymnet' is never on alert "
     f"'HighErrorRate' ({HER})"),
    ("label-dropped-by-by.yaml", "conea-monitor.yml",
     "label-dropped-by-by.yaml:5:68: policies[0].target.name: label 'pod' is never on alert "
     f"'HighErrorRate' ({HER})"),
    ("label-in-verify.yaml", "conea-monitor.yml",
     "label-in-verify.yaml:9:15: policies[0].verify.promql: label 'instance' is never on "
     f"alert 'HighErrorRate' ({HER})"),
    ("label-in-notify-title.yaml", "conea-monitor.yml",
     "label-in-notify-title.yaml:7:59: policies[0].steps[0][0].with.title: label 'servce' is "
     f"never on alert 'HighErrorRate' ({HER})"),
    ("label-of-another-alert.yaml", "conea-monitor.yml",
     "label-of-another-alert.yaml:5:36: policies[0].target.name: label 'datname' is never on "
     f"alert 'HighErrorRate' ({HER})"),
    ("label-kube-prometheus-stack.yaml", "conea-monitor.yml",
     "label-kube-prometheus-stack.yaml:8:13: policies[0].target.name: label 'deployment' is "
     "never on alert 'KubeContainerWaiting' (rules/kube-prometheus-stack.yaml:14: its labels "
     "are severity, namespace, pod, container)"),
    ("label-in-list-param.yaml", "conea-monitor.yml",
     "label-in-list-param.yaml:8:56: policies[0].steps[0][0].with.databases[0]: label "
     "'database' is never on alert 'PostgresIdleInTransaction' (rules/app.yml:15: its labels "
     "are severity, idle_for, team, namespace, instance, datname)"),
    ("label-alertname-alternatives.yaml", "conea-monitor.yml",
     "label-alertname-alternatives.yaml:5:68: policies[0].target.name: label 'pod' is never "
     f"on alert 'HighErrorRate' ({HER})"),
    ("missing-env-secret.yaml", "secrets.yml",
     "missing-env-secret.yaml:7:44: policies[0].steps[0][0].with.notifier: notifier 'oncall': "
     "url: secret env:XREF_NEVER_SET_URL: environment variable 'XREF_NEVER_SET_URL' is not set"),
    ("missing-routing-key.yaml", "secrets.yml",
     "missing-routing-key.yaml:7:44: policies[0].steps[0][0].with.notifier: notifier 'pager': "
     "routing_key: secret env:XREF_NEVER_SET_PD_KEY: environment variable "
     "'XREF_NEVER_SET_PD_KEY' is not set"),
    ("unreadable-secret-file.yaml", "secrets.yml",
     "unreadable-secret-file.yaml:8:26: policies[0].steps[0][0].with.target: postgres target "
     "'conea-production': password: secret file:secrets/no-such-password: cannot read file: "
     "No such file or directory"),
    ("missing-param-secret.yaml", "conea-monitor.yml",
     "missing-param-secret.yaml:11:45: policies[0].steps[0][0].with.headers.Authorization."
     "secret.env: secret env:XREF_NEVER_SET_TOKEN: environment variable 'XREF_NEVER_SET_TOKEN' "
     "is not set"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "config", "message"), ERRORS)
def test_a_broken_cross_reference_fails_check(
    run: Check, name: str, config: str, message: str
) -> None:
    code, err, _ = run("-c", config, "--rules", "rules/", name)
    assert code == 1
    assert err == [message, "FAILED: 1 error"]


@pytest.mark.parametrize(("name", "config", "message"), WARNINGS)
def test_a_doubtful_reference_warns_and_fails_with_strict(
    run: Check, name: str, config: str, message: str
) -> None:
    code, err, out = run("-c", config, "--rules", "rules/", name)
    assert (code, err[0]) == (0, f"warning: {message}")
    assert out.startswith("SUCCESS: 1 policies")
    code, err, _ = run("-c", config, "--rules", "rules/", "--strict", name)
    assert code == 1
    assert err[0] == f"warning: {message}"
    assert err[-1].startswith("FAILED: ") and err[-1].endswith("warnings, with --strict)")


def test_a_rule_file_whose_promql_does_not_parse_fails_check(run: Check) -> None:
    code, err, _ = run("-c", "conea-monitor.yml", "--rules", "bad-rules/", "bad-rule-file.yaml")
    assert code == 1
    assert err == [
        "bad-rules/app.yml:4:9: groups[0].rules[0]: rule 'HighErrorRate': invalid PromQL: "
        "unclosed left parenthesis",
        "FAILED: 1 error",
    ]


def test_a_rules_path_that_is_no_rule_file_fails_check(run: Check) -> None:
    code, err, _ = run(
        "-c", "conea-monitor.yml", "--rules", "not-a-rule-file.yaml", "not-a-rule-file.yaml"
    )
    assert code == 1
    assert err == [
        "not-a-rule-file.yaml:2:1: not a Prometheus rule file (no groups: list)",
        "FAILED: 1 error",
    ]


def test_labels_that_cannot_be_known_and_values_known_per_alert_pass_strict(run: Check) -> None:
    # replicas from the series' job label, a rule aggregating "without", a bare selector.
    args = ("-c", "conea-monitor.yml", "--rules", "rules/", "--strict")
    code, err, out = run(*args, "templated-unknown-params.yaml")
    assert (code, err) == (0, [])
    assert out.splitlines()[1] == (
        "templates checked against 6 alert rules; policies whose alert is in no rule given: none"
    )


def test_an_alert_in_no_rule_given_is_named_in_the_summary(run: Check) -> None:
    code, err, out = run("-c", "conea-monitor.yml", "--rules", "rules/", "alertname-typo.yaml")
    assert (code, err) == (0, [])
    assert out.splitlines()[1] == (
        "templates checked against 6 alert rules; policies whose alert is in no rule given: "
        "restart-on-errors (HighErorRate)"
    )


def test_without_rules_labels_are_not_judged_and_without_settings_names_are_not(
    run: Check,
) -> None:
    assert run("-c", "conea-monitor.yml", "label-typo.yaml")[:2] == (0, [])
    assert run("unknown-notifier.yaml")[:2] == (0, [])


class _Rules(http.server.BaseHTTPRequestHandler):
    body = b""

    config = b""

    def do_GET(self) -> None:
        body = {"/api/v1/rules": self.body, "/api/v1/status/config": self.config}.get(self.path)
        self.send_response(404 if body is None else 200)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    groups = [{"name": "app", "file": "/etc/prometheus/rules/app.yml", "rules": [
        {"type": "recording", "name": "job:errors:ratio",
         "query": "sum by (namespace, job) (rate(errors_total[5m]))", "labels": {}},
        {"type": "alerting", "name": "HighErrorRate", "query": "job:errors:ratio > 0.05",
         "labels": {"severity": "critical"}},
    ]}]  # fmt: skip
    _Rules.body = json.dumps({"status": "success", "data": {"groups": groups}}).encode()
    config = "global:\n  external_labels:\n    cluster: eu-1\n"
    _Rules.config = json.dumps({"status": "success", "data": {"yaml": config}}).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Rules)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_rules_from_prometheus_api_follow_its_recording_rules(run: Check, prometheus: str) -> None:
    code, err, _ = run("-c", "conea-monitor.yml", "--prometheus", prometheus, "label-typo.yaml")
    assert code == 0
    assert err == [
        "warning: label-typo.yaml:9:13: policies[0].target.name: label 'deploymnet' is never on "
        f"alert 'HighErrorRate' ({prometheus}/api/v1/rules (group 'app', "
        "/etc/prometheus/rules/app.yml): its labels are severity, namespace, job, cluster)"
    ]


def test_an_unreachable_prometheus_is_an_error_naming_it(run: Check, prometheus: str) -> None:
    code, err, _ = run(
        "-c", "conea-monitor.yml", "--prometheus", f"{prometheus}/nope", "label-typo.yaml"
    )
    assert code == 1
    assert err == [
        f"cannot read the rules from {prometheus}/nope/api/v1/rules: HTTP 404",
        "FAILED: 1 error",
    ]


@pytest.mark.parametrize(
    ("expr", "labels"),
    [
        ('sum by (namespace, deployment) (rate(x{job="a"}[5m])) > 0', ("namespace", "deployment")),
        ("sum(x) > 1", ()),
        ("sum without (cpu) (x) > 1", None),
        ('x{job="a"} > 1', None),
        ("rate(x[5m]) / rate(y[5m])", None),
        ("sum by (ns, pod) (x) * on (ns, pod) group_left (deployment) y",
         ("ns", "pod", "deployment")),
        ("sum by (ns, pod) (x) / on (ns) sum by (ns) (y)", ("ns",)),
        ("sum by (a) (x) or sum by (b) (y)", ("a", "b")),
        ("sum by (a) (x) or y", None),
        ('histogram_quantile(0.9, sum by (le, job) (rate(x[5m]))) > 0.5', ("job",)),
        ('label_replace(sum by (pod) (x), "deployment", "$1", "pod", "(.*)-.*")',
         ("pod", "deployment")),
        ('absent(up{job="api", instance=~".+"})', ("job",)),
        ("topk(3, max by (q) (x))", ("q",)),
        ('count_values("version", build_info)', ("version",)),
        ("time() - max by (instance) (x) > 300", ("instance",)),
    ],
)  # fmt: skip
def test_labels_an_expression_keeps(expr: str, labels: tuple[str, ...] | None) -> None:
    assert rules.kept(expr) == labels


def test_bundled_config_policies_and_rules_pass_strict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The secrets the bundled config and policies name, as the deployment sets them.
    for name in ("CONEA_ONCALL_WEBHOOK_URL", "CLOUDFLARE_PURGE_CACHE_URL"):
        monkeypatch.setenv(name, "https://hooks.example.com/x")
    for name in ("CONEA_PRODUCTION_DB_PASSWORD", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.setenv(name, "not-shown")
    monkeypatch.chdir(ROOT)
    args = ["check", "--strict", "--rules", "rules/", "-c", "config/conea-monitor.yml"]
    assert monitor_cli.main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines()[1] == (
        "templates checked against 27 alert rules; policies whose alert is in no rule given: none"
    )


def test_start_up_and_reload_refuse_policies_naming_what_the_settings_lack(
    tmp_path: Path,
) -> None:
    (tmp_path / "page.yaml").write_text((BROKEN / "unknown-notifier.yaml").read_text())
    config = tmp_path / "conea-monitor.yml"
    config.write_text(
        "policies: [page.yaml]\n"
        "notifiers: {oncall: {kind: slack, url: {env: XREF_NEVER_SET_URL}}}\n"
    )
    settings = settings_mod.load(config)
    with pytest.raises(PolicyLoadError) as caught:
        wiring.load_policies(settings, wiring.build_registry(settings))
    assert caught.value.errors == [
        f"{tmp_path / 'page.yaml'}:7:44: policies[0].steps[0][0].with.notifier: unknown "
        "notifier 'pagerduty' (known: oncall); notifiers are defined under notifiers in the "
        "settings"
    ]
    # An unset secret is no reason to refuse: it is read when used.
    text = (tmp_path / "page.yaml").read_text().replace("pagerduty", "oncall")
    (tmp_path / "page.yaml").write_text(text)
    assert len(wiring.load_policies(settings, wiring.build_registry(settings))) == 1
