"""Text the YAML parser cannot take is an error at its file:line:column in every loader:
a byte that is not UTF-8, a control character, nesting deeper than the parser follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import settings
from monitor.errors import ConfigError
from monitor.policy import loader
from monitor.probes import config as probes_config

CASES = [
    (
        b"policies:\n- name: caf\xe9\n",
        "{path}:2:12: the file is not UTF-8 (byte 0xe9)",
    ),
    (
        b"policies:\n- name: a\x07b\n",
        "{path}:2:10: invalid YAML: unacceptable character #x0007: "
        "special characters are not allowed",
    ),
    (
        b"policies: " + b"[" * 5000,
        "{path}:1:5010: invalid YAML: the document is nested too deeply",
    ),
]


@pytest.mark.parametrize(("data", "expected"), CASES, ids=["not-utf8", "control", "deep"])
def test_policy_file(data: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(data)
    assert loader.check([path]).errors == [expected.format(path=path)]


@pytest.mark.parametrize(("data", "expected"), CASES, ids=["not-utf8", "control", "deep"])
def test_config_and_probe_files(data: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        settings.load(path)
    assert str(caught.value) == expected.format(path=path)
    with pytest.raises(ConfigError) as caught:
        probes_config.load(path)
    assert str(caught.value) == expected.format(path=path)


def test_deep_block_nesting_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("policies:\n" + "".join(" " * i + "- \n" for i in range(0, 3000, 2)))
    [error] = loader.check([path]).errors
    assert error.startswith(f"{path}:") and error.endswith("the document is nested too deeply")
