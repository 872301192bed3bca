"""Templates: the sandbox, strict undefined names, defaults, errors that say where."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.actions.registry import Registry
from monitor.alerts.context import AlertContext
from monitor.errors import PolicyError
from monitor.policy import loader, policyset, templating

ALERT = AlertContext(
    labels={"alertname": "HighResponseTime", "namespace": "production", "service": "api"},
    annotations={"summary": "slow"},
    status="firing",
    fingerprint="4f8a1c2e9b7d3a60",
    starts_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
    generator_url="http://prometheus:9090/graph",
)
CTX = templating.context(ALERT)


def render(source: str) -> str:
    return templating.compile(source, "f.yaml:1:1: x").render(CTX)


def test_labels_annotations_and_alert_fields() -> None:
    assert render("{{ labels.namespace }}/{{ annotations.summary }}") == "production/slow"
    assert render("{{ alert.status }} {{ alert.fingerprint }}") == "firing 4f8a1c2e9b7d3a60"
    assert render("{{ alert.startsAt }} {{ alert.generatorURL }}") == (
        "2026-11-28T09:30:00Z http://prometheus:9090/graph"
    )


def test_default_fills_a_missing_label() -> None:
    assert render("{{ labels.deployment | default('conea-api') }}") == "conea-api"
    assert render("{{ labels.deployment | default(labels.service) }}") == "api"


def test_plain_strings_are_not_templates() -> None:
    template = templating.compile("kubernetes.scale by 50%")
    assert template.constant
    assert template.render(CTX) == "kubernetes.scale by 50%"


def test_undefined_name_is_an_error_naming_the_field() -> None:
    with pytest.raises(PolicyError) as caught:
        render("{{ labels.deployment }}")
    assert str(caught.value) == (
        "f.yaml:1:1: x: cannot render '{{ labels.deployment }}': 'dict object' has no"
        " attribute 'deployment'"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ labels.__init__.__globals__ }}",
        "{{ labels.update({'x': 1}) }}",
    ],
)
def test_sandbox_refuses_unsafe_access(source: str) -> None:
    with pytest.raises(PolicyError, match="cannot render"):
        render(source)
    assert "x" not in ALERT.labels


def test_syntax_error_is_reported_at_load(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        '    steps: [[{action: log, with: {message: "{{ labels.a | nofilter }}"}}]]\n'
    )
    report = loader.check([tmp_path / "p.yaml"], registry)
    assert report.errors == [
        f"{tmp_path}/p.yaml:5:44: policies[0].steps[0][0].with.message: template error:"
        " No filter named 'nofilter'."
    ]


def test_render_error_names_file_line_and_field(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target:\n"
        "      kind: Deployment\n"
        '      name: "{{ labels.deployment }}"\n'
        "    steps: [[{action: log}]]\n"
    )
    policy = loader.load([tmp_path / "p.yaml"], registry).get("p")
    assert policy is not None
    with pytest.raises(PolicyError) as caught:
        policyset.render_target(policy, ALERT)
    assert str(caught.value).startswith(
        f"{tmp_path}/p.yaml:6:13: policies[0].target.name: cannot render"
        " '{{ labels.deployment }}': "
    )


def test_templated_params_are_rendered_then_validated(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps:\n"
        "      - - action: test.scale\n"
        '          with: {replicas: "{{ labels.replicas | default(2) }}"}\n'
    )
    policy = loader.load([tmp_path / "p.yaml"], registry, strict_actions=True).get("p")
    assert policy is not None
    action = policy.steps[0][0]
    assert policyset.render_params(action, ALERT) == {"replicas": "2"}
    params = policyset.parse_params(action, ALERT, registry)
    assert params.model_dump() == {"replicas": 2}
    bad = AlertContext(**{**ALERT.__dict__, "labels": {"replicas": "-3"}})
    with pytest.raises(PolicyError) as caught:
        policyset.parse_params(action, bad, registry)
    assert str(caught.value) == (
        f"{tmp_path}/p.yaml:6:11: policies[0].steps[0][0]: parameters rendered for the alert"
        " are invalid: replicas: Input should be greater than or equal to 0"
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ 'x' * 200000000 }}", "a value of 200000000 characters or items (at most 65536)"),
        ("{{ [0] * 10**9 }}", "a value of 1000000000 characters or items (at most 65536)"),
        ("{{ range(10**9) | list }}", "a range of 1000000000 numbers (at most 10000)"),
        (
            "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}",
            "more than 10000 loop iterations and calls",
        ),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "more than 10000 loop iterations and calls",
        ),
        (
            "{{ ('x' * 60000) | replace('x', 'y' * 60000) }}",
            "a value of 3600000000 characters or items (at most 65536)",
        ),
        (
            "{{ range(9000) | join('x' * 60000) }}",
            "a value of 540000001 characters or items (at most 65536)",
        ),
        (
            "{{ range(9000) | join(d='x' * 60000) }}",
            "a value of 540000001 characters or items (at most 65536)",
        ),
        (
            "{{ ('x' * 60000) | replace(old='x', new='y' * 60000) }}",
            "a value of 3600000000 characters or items (at most 65536)",
        ),
        ("{{ '%(a)0999999999d' % {'a': 1} }}", "a format width over 65536: '%(a)0999999999'"),
        ("{{ 'x'.ljust(10**9) }}", "str.ljust is not allowed in policy templates"),
        ("{{ '{:>999999999}'.format(1) }}", "str.format is not allowed in policy templates"),
        ("{{ '%0999999999d' % 1 }}", "a format width over 65536: '%0999999999'"),
        ("{{ 7 ** 100000 }}", "a number of more than 4096 bits"),
        (
            "{{ [['x'] * 30000] * 60000 }}",
            "a value of 3600060000 characters or items (at most 65536)",
        ),
        (
            "{{ [['x'] * 30000, ['x'] * 30000] | sum(start=[]) | tojson }}",
            "a value of more than 65536 characters or items",
        ),
        ("{% for i in range(5000) %}{{ 'x' * 60 }}{% endfor %}", "output over 65536 characters"),
    ],
)
def test_sandbox_bounds_size_and_work(source: str, reason: str) -> None:
    with pytest.raises(PolicyError) as caught:
        render(source)
    assert str(caught.value) == f"f.yaml:1:1: x: cannot render {source!r}: {reason}"


@pytest.mark.parametrize("name", ["center", "indent", "wordwrap", "format", "lipsum"])
def test_multiplying_filters_and_globals_are_not_available(name: str) -> None:
    source = f"{{{{ 'x' | {name}(10**9) }}}}" if name != "lipsum" else "{{ lipsum(10**9) }}"
    with pytest.raises((templating.TemplateSyntaxError, PolicyError)):
        render(source)


def test_bounded_sandbox_still_renders_ordinary_templates() -> None:
    assert render(
        "{{ labels.service | upper | replace('A', 'a') }}-{{ labels.namespace[:4] }}"
        "{% for k, v in labels | dictsort %} {{ k }}={{ v }}{% endfor %}"
        " {{ labels.namespace.split('u') | join('+') }} {{ 'ab' * 2 }} {{ 2 ** 10 }}"
    ) == (
        "aPI-prod alertname=HighResponseTime namespace=production service=api prod+ction abab 1024"
    )


def promql(source: str, labels: dict[str, str]) -> str:
    template = templating.compile(source, "f.yaml:1:1: verify.promql", promql=True)
    return template.render(templating.context(AlertContext(**{**ALERT.__dict__, "labels": labels})))


def test_promql_templates_escape_every_value_as_a_string_literal() -> None:
    value = 'a\\b"c\nd\te\x01\ud800'
    assert promql('up{job="{{ labels.job }}"}', {"job": value}) == (
        'up{job="a\\\\b\\"c\\nd\\te\\u0001\\ufffd"}'
    )
    assert promql('up{job=~"{{ labels.job | re_escape }}"}', {"job": "a.b(c)"}) == (
        'up{job=~"a\\\\.b\\\\(c\\\\)"}'
    )
    assert promql("up{% if labels.job == 'x' %} > {{ 1 | raw }}{% endif %}", {"job": "x"}) == (
        "up > 1"
    )
    assert promql("{{ labels.expr | raw }}", {"expr": 'up{job="x"}'}) == 'up{job="x"}'
    # Only verify.promql is escaped: a notify title keeps its quotes.
    assert render('"{{ labels.service }}"') == '"api"'
