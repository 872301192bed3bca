"""The API's ``kind`` filter takes only the kinds ``queries.AUDIT_KINDS`` lists: every kind
of audit record the code writes must be among them, or that record could never be
listed by its kind."""

from __future__ import annotations

import ast
from pathlib import Path

from monitor.store import queries

MONITOR = Path(__file__).resolve().parents[2] / "monitor"


def _kind_argument(call: ast.Call) -> ast.expr | None:
    name = getattr(call.func, "attr", getattr(call.func, "id", None))
    if name == "note" and call.args:  # Ledger.note(kind, message, ...)
        return call.args[0]
    if name == "Audit":  # records.Audit(at, kind, message, ...)
        if len(call.args) > 1:
            return call.args[1]
        return next((k.value for k in call.keywords if k.arg == "kind"), None)
    return None


def written_kinds() -> dict[str, str]:
    """kind -> where: every literal kind passed to an audit record's writers, and every
    ``"kind": "..."`` of a row the store inserts into the audit table itself."""
    found: dict[str, str] = {}
    for path in sorted(MONITOR.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.Call):
                argument = _kind_argument(node)
                values += [argument] if argument is not None else []
            elif isinstance(node, ast.Dict) and path.parent.name == "store":
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "kind"
                ]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.setdefault(value.value, f"{path.relative_to(MONITOR.parent)}")
    return found


def test_every_audit_kind_written_is_one_the_api_lists() -> None:
    kinds = written_kinds()
    assert {"decision", "pause", "breaker", "coalesce"} <= set(kinds)  # the scan finds them
    missing = {k: where for k, where in kinds.items() if k not in queries.AUDIT_KINDS}
    assert missing == {}, "add these to monitor/store/queries.py AUDIT_KINDS"
    assert sorted(queries.AUDIT_KINDS) == sorted(set(queries.AUDIT_KINDS))


def test_the_api_docs_list_every_value_a_closed_filter_takes() -> None:
    docs = (MONITOR.parent / "docs" / "api.md").read_text()
    rows = {
        line.split("|")[1].strip(): line for line in docs.splitlines() if line.startswith("| `GET")
    }
    for listing, filters in queries.CHOICES.items():
        row = rows[f"`GET /api/v1/{listing}`"]
        for name, allowed in filters.items():
            assert f"`{name}` (" in row, (listing, name)
            assert [v for v in allowed if f"`{v}`" not in row] == [], (listing, name)
