"""The Dockerfile builds the image the chart runs (no Docker engine here: read it instead)."""

from __future__ import annotations

import json
import re
import tomllib

import helm_python as helm

from tests.helm import conftest as c

DOCKERFILE = c.ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _last(word: str) -> str:
    return [rest for w, rest in _instructions() if w == word][-1]


def test_the_image_is_python_3_11_slim_and_runs_the_console_script() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in [f"{w} {r}" for w, r in _instructions()]
    assert json.loads(_last("ENTRYPOINT")) == ["conea-monitor"]
    scripts = tomllib.loads((c.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["conea-monitor"] == "monitor.cli:main"


def test_the_image_user_port_and_data_volume_match_the_chart(chart: helm.Chart) -> None:
    values = chart.values
    uid, _, gid = _last("USER").partition(":")
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]
    assert _last("EXPOSE") == "9115"
    deployment = c.one(c.render(chart), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 9115
    data = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data"]
    assert json.loads(_last("VOLUME")) == data
    assert "CONEA_MONITOR_DATA_DIR=/var/lib/conea-monitor" in _last("ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in _last("ENV")  # read-only root file system


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (c.ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert source in allowed, f"{source} is excluded by .dockerignore"


def test_the_images_default_command_loads_its_bundled_config() -> None:
    from monitor import settings

    cmd = json.loads(_last("CMD"))
    assert cmd[:3] == ["serve", "--config", "/app/config/conea-monitor.yml"]
    # /app/config and /app/remediations are copies of config/ and remediations/.
    assert "COPY config /app/config" in [f"{w} {r}" for w, r in _instructions()]
    assert "COPY remediations /app/remediations" in [f"{w} {r}" for w, r in _instructions()]
    loaded = settings.load(c.ROOT / "config" / "conea-monitor.yml")
    assert [p.name for p in loaded.policies] == ["remediations"]
    assert loaded.resolve(loaded.policies[0]) == (c.ROOT / "remediations").resolve()
