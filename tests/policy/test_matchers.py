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
        ('a=~"(x"', "invalid regular expression '(x': missing ): (x"),
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
        # Once refused by the hand translation onto Python's re; RE2 runs them as Go does.
        (r"\pL+", "日本é", "a1"),
        (r"\p{Greek}+", "αβ", "ab"),
        ("[[:^alpha:]]+", "1-2", "a"),
        (r"[\D]+", "ab", "a1"),
        ("(?U)a+", "aa", "b"),
        ("x(?i)y|z", "xY", "xZ"),
        ("a)|(b", "aXYZ", "ba"),  # anchored as ^(?:a)|(b)$, as Alertmanager does
        ("\ufffd", "\ud800", "a"),  # a lone surrogate in a label is U+FFFD, as in Go
    ],
)
def test_go_regex_semantics(pattern: str, yes: str, no: str) -> None:
    regex = goregex.compile(pattern)
    if yes:
        assert regex.matches(yes), (pattern, yes)
    assert not regex.matches(no), (pattern, no)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=a)", "invalid perl operator: (?="),
        (r"(a)\1", "invalid escape sequence: \\1"),
        ("a*+", "bad repetition operator: *+"),
        ("a{1001}", "invalid repetition size: {1001}"),
        ("[a", "missing ]: [a"),
        ("a\\", "trailing \\"),
        (r"\e", "invalid escape sequence: \\e"),
        (r"\C", "invalid escape sequence '\\C'"),  # RE2 takes it (any byte); Go does not
        (r"\\\C", "invalid escape sequence '\\C'"),
        ("(?<n>a)", "invalid named capture '(?<'"),  # Go 1.22 takes it; Alertmanager 0.25 not
    ],
)
def test_go_regex_errors(pattern: str, reason: str) -> None:
    with pytest.raises(goregex.GoRegexError) as caught:
        goregex.compile(pattern)
    assert str(caught.value) == f"invalid regular expression {pattern!r}: {reason}"


def test_escaped_backslash_before_c_and_quoted_c_are_literals() -> None:
    assert goregex.compile(r"\\C").matches("\\C")
    assert goregex.compile(r"\Q\C\E").matches("\\C")


@pytest.mark.timeout(30)
def test_no_regex_backtracks_on_a_long_label() -> None:
    """``(a+)+b`` took 5.6 s on a 28-character label on Python's re, doubling per character."""
    [m] = matchers.parse('job=~"(a+)+b"')
    [n] = matchers.parse('job!~"(a|aa)*c"')
    label = "a" * 100_000
    assert not m.matches({"job": label})
    assert n.matches({"job": label})
    assert m.matches({"job": label + "b"})
