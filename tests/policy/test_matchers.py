"""Matcher parsing and matching, as Alertmanager 0.25 does them (amtool agrees: test_amtool)."""

from __future__ import annotations

import pytest

from monitor.policy import goregex, matchers
from monitor.policy.matchers import Op


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('alertname="HighErrorRate"', [("alertname", Op.EQ, "HighErrorRate")]),
        ("severity=~critical|high", [("severity", Op.RE, "critical|high")]),
        ('  namespace  !~  "kube-.*"  ', [("namespace", Op.NRE, "kube-.*")]),
        ("{a=b, c!=d,}", [("a", Op.EQ, "b"), ("c", Op.NE, "d")]),
        ('a="x,y",b="z"', [("a", Op.EQ, "x,y"), ("b", Op.EQ, "z")]),
        ('quote="She said: \\"Hi\\""', [("quote", Op.EQ, 'She said: "Hi"')]),
        ('a="line\\nbreak"', [("a", Op.EQ, "line\nbreak")]),
        ('a="back\\\\slash"', [("a", Op.EQ, "back\\slash")]),
        ('a="spurious\\escape"', [("a", Op.EQ, "spurious\\escape")]),
        ("a=trailing\\", [("a", Op.EQ, "trailing\\")]),
        ('a=""', [("a", Op.EQ, "")]),
        ("a=", [("a", Op.EQ, "")]),
        ('a=" padded "', [("a", Op.EQ, " padded ")]),
        ("a==b", [("a", Op.EQ, "=b")]),
    ],
)
def test_parse(text: str, expected: list[tuple[str, Op, str]]) -> None:
    assert [(m.name, m.op, m.value) for m in matchers.parse(text)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("severity critical", "bad matcher format: 'severity critical'"),
        ("1a=b", "bad matcher format: '1a=b'"),
        ("a=b,,c=d", "bad matcher format: ''"),
        ('a="b', "matcher value contains unescaped double quote: '\"b'"),
        ('a=b"c', "matcher value contains unescaped double quote: 'b\"c'"),
        ('a="b"c"', 'matcher value contains unescaped double quote: \'"b"c"\''),
        ('a=~"(x"', "invalid regular expression '(x': missing closing )"),
    ],
)
def test_parse_errors_quote_the_offending_text(text: str, message: str) -> None:
    with pytest.raises(matchers.MatcherError) as caught:
        matchers.parse(text)
    assert str(caught.value) == message


def test_missing_label_counts_as_empty() -> None:
    [absent] = matchers.parse('team=""')
    [present] = matchers.parse('team!=""')
    assert absent.matches({})
    assert not present.matches({})
    assert present.matches({"team": "db"})


def test_regex_is_anchored_at_both_ends() -> None:
    [m] = matchers.parse('namespace=~"prod"')
    assert m.matches({"namespace": "prod"})
    assert not m.matches({"namespace": "production"})
    assert not m.matches({"namespace": "preprod"})
    [n] = matchers.parse('namespace!~"kube-.*"')
    assert n.matches({"namespace": "production"})
    assert not n.matches({"namespace": "kube-system"})


def test_all_matchers_of_a_set_must_match() -> None:
    ms = matchers.parse_all(['alertname="A"', 'severity=~"critical|high"'])
    assert matchers.matches_all(ms, {"alertname": "A", "severity": "high"})
    assert not matchers.matches_all(ms, {"alertname": "A", "severity": "low"})


def test_str_round_trips() -> None:
    for value in ['q"uote', "back\\slash", "new\nline", ""]:
        m = matchers.Matcher("a", Op.NE, value)
        [parsed] = matchers.parse(str(m))
        assert (parsed.name, parsed.op, parsed.value) == ("a", Op.NE, value)


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        (r"\d+", "123", "١٢٣"),  # Go's \d is ASCII only
        (r"\w+", "a_1", "é"),
        (r"\s", " ", "\v"),  # Go's \s has no vertical tab
        ("a$\n", "", "a\n"),  # $ is the end of the text, not "before a final newline"
        ("(?m)a$\n", "a\n", ""),
        ("a{,2}", "a{,2}", "aa"),  # not a repeat in Go
        (r"\Qa.b\E", "a.b", "axb"),
        ("[[:upper:]][[:digit:]]", "A1", "a1"),
        ("a(?i)b", "aB", "AB"),
        (r"\x{41}\101", "AA", "A"),
        ("[]a]+", "]a", "b"),
        ("[a-]+", "a-", "b"),
        (r"a\z", "a", "a\n"),
    ],
)
def test_go_regex_semantics(pattern: str, yes: str, no: str) -> None:
    regex = goregex.compile(pattern)
    if yes:
        assert regex.match(yes), (pattern, yes)
    assert not regex.match(no), (pattern, no)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=a)", "invalid or unsupported Perl syntax '(?='"),
        (r"(a)\1", "invalid escape sequence '\\1' (back-references are not allowed)"),
        ("a*+", "invalid nested repetition operator '+'"),
        ("a{1001}", "invalid repeat count '{1001}'"),
        ("a{3,2}", "invalid repeat count '{3,2}'"),
        ("[a", "missing closing ] in '[a'"),
        ("a)", "unexpected )"),
        ("a\\", "trailing backslash at end of expression"),
        (r"\e", "invalid escape sequence '\\e'"),
        (r"\pL", "Unicode classes ('\\p') are not supported by conea-monitor"),
        ("(?U)a", "the U (ungreedy) flag is not supported by conea-monitor"),
        ("x(?i)y|z", "a flag group followed by '|' in the same group is not supported"),
    ],
)
def test_go_regex_errors(pattern: str, reason: str) -> None:
    with pytest.raises(goregex.GoRegexError) as caught:
        goregex.compile(pattern)
    assert str(caught.value) == f"invalid regular expression {pattern!r}: {reason}"
