"""Alertmanager webhook payloads: models, parsing with field-level errors, dedupe keys."""
