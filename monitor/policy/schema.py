"""The JSON Schema of a remediation policy file, for editors (``conea-monitor schema``).

Point an editor at it, e.g. with the YAML language server::

    # yaml-language-server: $schema=./policy.schema.json

The schema checks shape and types; ``conea-monitor check`` checks the rest (matchers,
templates, action names and parameters, time interval names).
"""

from __future__ import annotations

from typing import Any

from monitor.policy import models

SCHEMA_ID = "https://conea.io/schemas/conea-monitor/remediation-policy.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a file under ``remediations/``."""
    schema = models.PolicyFile.model_json_schema(by_alias=True, mode="validation")
    schema.update(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
            "title": "conea-monitor remediation policies",
        }
    )
    return schema
