"""Our matcher verdicts against Alertmanager's own: ``amtool config routes test``.

Random matcher sets (seeded, so a failure reproduces) become the routes of one
alertmanager.yml (``continue: true``, one receiver each) and the policies of one policy
file; for every random label set, amtool names the receivers whose routes match and
``PolicySet.match`` names the policies. They must agree. Which matcher strings parse
at all is compared with ``amtool check-config``.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from monitor.actions.registry import Registry
from monitor.policy import loader, matchers
from monitor.policy.timeintervals import NamedTimeInterval
from tests.support import services

pytestmark = pytest.mark.integration

NAMES = ["alertname", "severity", "namespace", "team"]
VALUES = [
    "", "a", "A", "ab", "aa", "abab", "b", "abc", "x,y", 'q"uote', "back\\slash", "new\nline",
    " sp ", "kube-system", "prod-1", "123", "é", "日本", "a.b", "{x}", "=~", "\\n", "a{,2}",
    "aB1", "x y", "a\n",
]  # fmt: skip
# Values where Go's and Python's regex engines would differ if translated naively.
EDGE_VALUES = [
    "٣",
    "αβ",
    "\\C",
    "\uff21",
    "\u00a0",
    "\v",
    "\t",
    "_",
    "ab\n",
    "\n",
    "K",
    "\u017f",
    "é1",
]
REGEXES = [
    "a.*", ".*", ".+", "", "a|b", "(a|ab)", "[a-c]+", "[^a]*", r"\d+", r"\w+", r"\s.*",
    r".*\S", "(?i)a.*", "a(?i)b.*", "kube-.*", r"prod-\d", "[[:alpha:]]+", "[[:digit:]]*",
    "x,y", "a{2}", "a{1,}b?", "a{,2}", r"\Qa.b\E", "(?s).*", r"\x61.*", r"[\d\w]+", "^a$",
    "a$", "(?m)a$", r"\ba.*", "日.*", "é|e", r"\.", "[.]b", r"a\z", "(?i:A)b", "[a-]+",
    r"q\"uote", r"back\\slash", "new\nline", "(a)(b)?", "(?P<x>a)b*", "[^\n]*",
    "a$\n", "(?i)\u017f", "[[:word:]]+",
    # Refused while matchers ran on a translation to Python's re; RE2 runs them as Go does.
    r"\pL+", r"\p{Han}.*", r"\PL", "[[:^alpha:]]+", "(?U)a+", r"[\D]+", r"[\W\S]", "a(?i)b|c",
    "a)|(b",
]  # fmt: skip
TRICKY = [
    'a="b"', "a=b", "a = b ", "{a=\"b\"}", 'a="b",c!="d"', "{a=~\"x,y\", b!~\"z\"}",
    'a="b\\"c"', 'a="b\\nc"', 'a="b\\c"', 'a="b\\\\"', "a=b\\", 'a=""', "a=", "a=b,",
    'a="b', 'a=b"', 'a="b"c"', "1a=b", "a==b", "a=~(", "a=~\"[\"", "a!~\"(?i)x\"",
    "a=~\"(?=x)\"", "a=~\"\\\\1\"", "a b", "", ",", "a=b,,c=d", ":a=b", "a:b=c", "a-b=c",
    "a=\"x\" ", " a = \"x\"", "a=~\"a**\"", "a=~\"a{1001}\"", "a=~\"a{2,1}\"",
    "a=~\"a*+\"", "a=~\"\\\\C\"", "a=~\"a)|(b\"", "a=~\"(?<n>a)\"",
]  # fmt: skip


@pytest.fixture(scope="module")
def amtool() -> str:
    return services.need_binary("amtool")


def _matcher_text(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    op = rng.choice(list(matchers.Op))
    value = rng.choice(REGEXES if op in (matchers.Op.RE, matchers.Op.NRE) else VALUES)
    text = str(matchers.Matcher(name, op, value))
    raw_ok = value and not any(c in value for c in '"\\,{} \n')
    if raw_ok and rng.random() < 0.4:
        text = f"{name}{op.value}{value}"
    if rng.random() < 0.3:
        text = f" {name} {op.value} " + text[len(name) + len(op.value) :] + " "
    return text


def _matcher_set(rng: random.Random) -> list[str]:
    texts = [_matcher_text(rng) for _ in range(rng.randint(1, 3))]
    if len(texts) > 1 and rng.random() < 0.5:
        joined = ", ".join(texts)
        return ["{" + joined + "}" if rng.random() < 0.5 else joined]
    return texts


def _label_set(rng: random.Random) -> dict[str, str]:
    labels = {}
    for name in NAMES:
        if rng.random() < 0.7:
            labels[name] = rng.choice(VALUES)
    return labels


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _routes_test(amtool: str, config: Path, labels: dict[str, str]) -> set[str]:
    args = [f'{name}="{_escape(value)}"' for name, value in labels.items() if value]
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", "--", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {r for r in result.stdout.strip().split(",") if r != "default"}


def _write_configs(tmp_path: Path, sets: list[list[str]]) -> tuple[Path, Path]:
    routes = [
        {"receiver": f"r{i}", "continue": True, "matchers": entries}
        for i, entries in enumerate(sets)
    ]
    receivers = [{"name": "default"}] + [{"name": f"r{i}"} for i in range(len(sets))]
    am = tmp_path / "alertmanager.yml"
    am.write_text(json.dumps({"route": {"receiver": "default", "routes": routes},
                              "receivers": receivers}))  # fmt: skip
    policies = [
        {"name": f"r{i}", "match": entries, "target": {"kind": "K", "name": "n"},
         "steps": [[{"action": "log"}]]}
        for i, entries in enumerate(sets)
    ]  # fmt: skip
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(json.dumps({"policies": policies}))
    return am, policy_file


def _cases(seed: int, n_sets: int, n_labels: int) -> Iterator[tuple[list[list[str]], list]]:
    rng = random.Random(seed)
    sets = [_matcher_set(rng) for _ in range(n_sets)]
    valid = []
    for entries in sets:
        try:
            if all(matchers.parse(e) for e in entries):
                valid.append(entries)
        except matchers.MatcherError:
            pass
    labels = [_label_set(rng) for _ in range(n_labels)]
    yield valid, labels


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_routing_verdicts_agree_with_amtool(
    seed: int, amtool: str, tmp_path: Path, registry: Registry
) -> None:
    for sets, label_sets in _cases(seed, n_sets=80, n_labels=25):
        # Every label value once as an alertname equality, to exercise the index too.
        sets += [[f'alertname="{_escape(v)}"'] for v in VALUES if v]
        sets += [[t] for t in TRICKY if _parses(t) and matchers.parse(t)]
        am, policy_file = _write_configs(tmp_path, sets)
        policies = loader.load([policy_file], registry, strict_actions=True)
        assert len(policies) == len(sets)
        label_sets += [{"alertname": v, "severity": "critical"} for v in VALUES]
        disagreements = []
        for labels in label_sets:
            theirs = _routes_test(amtool, am, labels)
            ours = {p.name for p in policies.match({k: v for k, v in labels.items() if v})}
            if ours != theirs:
                detail = {n: sets[int(n[1:])] for n in ours ^ theirs}
                disagreements.append((labels, sorted(ours - theirs), detail))
        assert disagreements == []
        pairs = sum(len(policies.match(labels)) for labels in label_sets)
        assert 0.05 < pairs / (len(label_sets) * len(sets)) < 0.95  # not trivially all or none


def test_regex_semantics_agree_with_amtool(amtool: str, tmp_path: Path, registry: Registry) -> None:
    """Every regex of the pool against every value: the full cross product."""
    sets = [[str(matchers.Matcher("team", matchers.Op.RE, r))] for r in REGEXES]
    am, policy_file = _write_configs(tmp_path, sets)
    policies = loader.load([policy_file], registry, strict_actions=True)
    disagreements = []
    for value in VALUES + EDGE_VALUES:
        theirs = _routes_test(amtool, am, {"team": value})
        ours = {p.name for p in policies.match({"team": value} if value else {})}
        for name in sorted(ours ^ theirs):
            disagreements.append((value, sets[int(name[1:])][0], name in ours))
    assert disagreements == []


def _parses(text: str) -> bool:
    try:
        matchers.parse(text)
    except matchers.MatcherError:
        return False
    return True


def _amtool_parses(amtool: str, config: Path, text: str) -> bool:
    route = {"receiver": "r", "matchers": [text]}
    config.write_text(json.dumps({"route": {"receiver": "r", "routes": [route]},
                                  "receivers": [{"name": "r"}]}))  # fmt: skip
    result = subprocess.run(
        [amtool, "check-config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return result.returncode == 0


def test_which_matchers_parse_agrees_with_amtool(amtool: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    texts = TRICKY + [_matcher_text(rng) for _ in range(20)]
    verdicts = {text: _amtool_parses(amtool, tmp_path / "am.yml", text) for text in texts}
    assert {text: _parses(text) for text in texts} == verdicts
    assert 10 < sum(verdicts.values()) < len(texts) - 10  # both kinds are well represented


INTERVALS = [
    {"times": [{"start_time": "09:00", "end_time": "24:00"}]},
    {"times": [{"start_time": "18:00", "end_time": "09:00"}]},
    {"times": [{"start_time": "9:00", "end_time": "10:00"}]},
    {"times": [{"start_time": "09:00", "end_time": "24:01"}]},
    {"weekdays": ["monday:friday", "Sunday"]},
    {"weekdays": ["saturday:sunday"]},
    {"weekdays": ["funday"]},
    {"days_of_month": ["-3:-1", "1", "1:31"]},
    {"days_of_month": ["-1:5"]},
    {"days_of_month": ["0"]},
    {"days_of_month": ["32"]},
    {"days_of_month": ["28:-5"]},
    {"months": ["january:march", "12", "May"]},
    {"months": ["march:january"]},
    {"years": ["2026:2027", "2030"]},
    {"years": ["2027:2026"]},
    {"location": "Asia/Tokyo"},
    {"location": "Mars/Olympus_Mons"},
]
# Alertmanager accepts these and then never matches them; conea-monitor calls them errors.
STRICTER = [{"months": ["13"]}, {"months": ["0:2"]}]


@pytest.mark.parametrize("entry", INTERVALS + STRICTER, ids=lambda e: json.dumps(e))
def test_time_interval_validation_agrees_with_amtool(
    entry: dict[str, object], amtool: str, tmp_path: Path
) -> None:
    config = tmp_path / "am.yml"
    intervals = [{"name": "i", "time_intervals": [entry]}]
    route = {"receiver": "r", "active_time_intervals": ["i"]}
    document = {"route": {"receiver": "r", "routes": [route]}, "receivers": [{"name": "r"}]}
    config.write_text(json.dumps({**document, "time_intervals": intervals}))
    result = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    ours = True
    try:
        NamedTimeInterval.model_validate(intervals[0])
    except pydantic.ValidationError:
        ours = False
    if entry in STRICTER:
        assert (ours, result.returncode) == (False, 0), result.stdout
    else:
        assert ours == (result.returncode == 0), result.stdout


ATOMS = ["a", "b", "1", ".", r"\d", r"\w", r"\s", r"\S", "[a-c]", "[^a]", "[[:alpha:]]", "é",
         r"\.", "-", " ", r"\n", r"\b", "$", "^", "(?i:a)", r"\x41", "[\\d_]"]  # fmt: skip
QUANTIFIERS = ["", "", "", "*", "+", "?", "{1,2}", "*?", "+?", "{2}", "{0,}"]


def _random_regex(rng: random.Random, depth: int = 0) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        if depth < 2 and rng.random() < 0.2:
            inner = "|".join(_random_regex(rng, depth + 1) for _ in range(rng.randint(1, 3)))
            atom = f"({inner})"
        else:
            atom = rng.choice(ATOMS)
        quantifier = rng.choice(QUANTIFIERS) if atom not in ("$", "^", r"\b") else ""
        parts.append(atom + quantifier)
    prefix = rng.choice(["", "", "", "(?i)", "(?s)", "(?m)"]) if depth == 0 else ""
    return prefix + "".join(parts)


def test_random_regexes_agree_with_amtool(amtool: str, tmp_path: Path, registry: Registry) -> None:
    rng = random.Random(11)
    regexes = sorted({_random_regex(rng) for _ in range(150)})
    sets = [[str(matchers.Matcher("team", matchers.Op.RE, r))] for r in regexes]
    am, policy_file = _write_configs(tmp_path, sets)
    policies = loader.load([policy_file], registry, strict_actions=True)
    alphabet = ["a", "b", "A", "1", "é", " ", "\n", "-", ".", "_", "x"]
    values = (
        VALUES
        + EDGE_VALUES
        + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(30)]
    )
    disagreements = []
    matched = 0
    for value in values:
        theirs = _routes_test(amtool, am, {"team": value})
        ours = {p.name for p in policies.match({"team": value} if value else {})}
        matched += len(ours)
        for name in sorted(ours ^ theirs):
            disagreements.append((value, regexes[int(name[1:])], name in ours))
    assert disagreements == []
    assert 0.02 < matched / (len(values) * len(regexes)) < 0.98
