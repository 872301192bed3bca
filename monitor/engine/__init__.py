"""The remediation engine: guardrails, decisions, execution, verification, revert."""
