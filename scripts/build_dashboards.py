"""Build the Grafana dashboards in ``dashboards/`` from Python (grafana-foundation-sdk).

    .venv/bin/python -m scripts.build_dashboards            # rewrite dashboards/*.json
    .venv/bin/python -m scripts.build_dashboards --check    # exit 1 if any is stale

The JSON files are committed so they can be imported into Grafana (or provisioned from
a ConfigMap) without Python; tests/dashboards/ checks they match this code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts import dashboard_kit as kit
from scripts import dashboards_app, dashboards_conea, dashboards_data

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "dashboards"

#: File name (without .json) -> the function that builds that dashboard.
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "system-overview": dashboards_app.system_overview,
    "api-performance": dashboards_app.api_performance,
    "database": dashboards_data.database,
    "business-metrics": dashboards_app.business,
    "probes": dashboards_conea.probes,
    "remediation": dashboards_conea.remediation,
}


def build_all() -> dict[str, str]:
    """File name -> the JSON text it must contain."""
    return {f"{name}.json": kit.render(build()) for name, build in DASHBOARDS.items()}


def stale(directory: Path = OUTPUT) -> list[str]:
    """Names of the files in ``directory`` that differ from the code (or are missing),
    and of stray ``*.json`` files no dashboard produces."""
    wanted = build_all()
    out = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    out += [path.name for path in sorted(directory.glob("*.json")) if path.name not in wanted]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="directory to write")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.output)
        for name in bad:
            print(
                f"{args.output / name} is out of date: run python -m scripts.build_dashboards",
                file=sys.stderr,
            )
        return 1 if bad else 0
    args.output.mkdir(parents=True, exist_ok=True)
    for name, text in build_all().items():
        (args.output / name).write_text(text)
        print(f"wrote {args.output / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
