"""The docs' command examples still print what the docs say (as httpx and pydantic test
theirs).

Every ```console block of README.md and docs/*.md is run: each ``$ conea-monitor ...``
line with the real command line, in a fresh directory that holds the repository's
top-level entries (remediations/, config/, rules/, ...) as links, and the text under
it is compared with what the command printed (stdout and stderr, as a terminal shows
them). A block that cannot run offline says why in an HTML comment on the line above:
``<!-- not run: needs a cluster -->``. A ```yaml or ```json block under
``<!-- file: NAME -->`` is written to NAME before the document's later blocks run, so
an example can show the file it reads.

In the expected text a line ``...`` stands for any number of lines, and a line ending
in ``...`` for any line that starts with what comes before it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: (?P<why>\S.*?) -->$")
_FILE = re.compile(r"^<!-- file: (?P<name>[\w.-]+) -->$")


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None = None
    file: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # written before it runs

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    found: list[Block] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    files: dict[str, str] = {}
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        above = lines[i - 1].strip() if i > 0 else ""
        block = Block(doc, i + 1, opening.group(1), "\n".join(lines[i + 1 : end]) + "\n")
        if (marker := _NOT_RUN.match(above)) is not None:
            block.not_run = marker["why"]
        if (marker := _FILE.match(above)) is not None:
            block.file = marker["name"]
            files[marker["name"]] = block.text
        block.files = dict(files)
        found.append(block)
        i = end + 1
    return found


CONSOLE = [b for doc in DOCS for b in blocks(doc) if b.lang == "console"]


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) in the order the block shows them."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
        else:
            raise AssertionError(f"{block.id}: output before the first '$ ' line")
    for _, expected in out:
        while expected and not expected[-1].strip():
            expected.pop()
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[k:]) for k in range(len(actual) + 1))
    if not actual:
        return False
    line = actual[0]
    same = line.startswith(head[:-3]) if head.endswith("...") else line == head
    return same and matches(rest, actual[1:])


def run(command: str, cwd: Path) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "conea-monitor", command
    redirect = None
    if ">" in argv:
        at = argv.index(">")
        argv, redirect = argv[:at], argv[at + 1]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONEA_", "KUBERNETES_"))
    }
    # Offline and alone: no kubeconfig, no service account, this checkout's code.
    env.update(HOME=str(cwd), KUBECONFIG=str(cwd / "no-kubeconfig"), PYTHONPATH=str(ROOT))
    env.update(COLUMNS="80", TZ="UTC")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if redirect is not None:
        (cwd / redirect).write_text(done.stdout)
        return done.stderr.splitlines()
    return [line.rstrip() for line in (done.stdout + done.stderr).splitlines()]


def workdir(tmp_path: Path, block: Block) -> Path:
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (tmp_path / entry.name).symlink_to(entry)
    for name, text in block.files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("block", [b for b in CONSOLE if b.not_run is None], ids=lambda b: b.id)
def test_console_block_prints_what_the_docs_say(block: Block, tmp_path: Path) -> None:
    cwd = workdir(tmp_path, block)
    for command, expected in commands(block):
        actual = run(command, cwd)
        printed, said = "\n".join(actual), "\n".join(expected)
        assert matches(expected, actual), (
            f"{block.id}: `{command}` printed:\n{printed}\n\nthe docs say:\n{said}"
        )


def test_every_console_block_runs_or_says_why_not() -> None:
    unrunnable = [
        f"{b.id}: `{command}`"
        for b in CONSOLE
        if b.not_run is None
        for command, _ in commands(b)
        if not command.startswith("conea-monitor ")
    ]
    assert unrunnable == [], "mark these blocks <!-- not run: why -->"
    assert len([b for b in CONSOLE if b.not_run is None]) >= 6


def test_the_runner_compares_and_skips_as_it_says(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "<!-- file: a.yaml -->\n```yaml\nx: 1\n```\n\n"
        "<!-- not run: needs a cluster -->\n```console\n$ kubectl get pods\n```\n\n"
        "```console\n$ conea-monitor --version\nconea-monitor ...\n```\n"
    )
    file_block, cluster, version = blocks(doc)
    assert (file_block.file, cluster.not_run, cluster.files) == (
        "a.yaml",
        "needs a cluster",
        {"a.yaml": "x: 1\n"},
    )
    [(command, expected)] = commands(version)
    (tmp_path / "w").mkdir()
    assert matches(expected, run(command, workdir(tmp_path / "w", version)))
    assert not matches(["conea-monitor 0.0.0-never"], ["conea-monitor 1.0"])
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not matches(["a", "...", "z"], ["a", "b"])
