"""YAML aliases are bounded in every loader: a billion-laughs file fails fast, file:line."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor import yamlfile
from monitor.errors import ConfigError
from monitor.policy import loader

LEVELS = "abcdefghijklmnopq"


def bomb(levels: int) -> str:
    """290 bytes at 9 levels; each level multiplies the expanded document by nine."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in itertools.pairwise(LEVELS[:levels]):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("levels", [9, 16])
def test_policy_file_alias_bomb_is_a_load_error(levels: int, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("policies: []\n" + bomb(levels))
    report = loader.check([path])
    assert report.errors == [
        f"{path}:7:4: invalid YAML: aliases expand this node by more than 100000 nodes"
    ]


@pytest.mark.timeout(30)
def test_config_file_alias_bomb_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        yamlfile.load(bomb(12), "monitor.yml")
    assert str(caught.value) == (
        "monitor.yml:6:4: invalid YAML: aliases expand this node by more than 100000 nodes"
    )


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        yamlfile.load("a: 1\nb: &b [1, *b]\n", "monitor.yml")
    assert str(caught.value) == (
        "monitor.yml:2:4: invalid YAML: an alias refers to a node that contains it"
    )


def test_ordinary_aliases_and_large_files_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = yamlfile.load("base: &base {a: 1}\nx: *base\ny: [*base, *base]\n", "m.yml")
    assert data == {"base": {"a": 1}, "x": {"a": 1}, "y": [{"a": 1}, {"a": 1}]}
    monkeypatch.setattr(yamlfile, "MAX_NODES", 100)
    big = "items:\n" + "".join(f"  - {{k: {i}}}\n" for i in range(200))
    data, _ = yamlfile.load(big, "big.yml")  # 600 nodes, none of them from an alias
    assert len(data["items"]) == 200
    aliased = "a: &a {k: v}\nitems:\n" + "  - *a\n" * 40  # aliases add 120 nodes
    with pytest.raises(ConfigError, match="more than 100 nodes"):
        yamlfile.load(aliased, "aliased.yml")
