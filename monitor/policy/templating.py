"""Templates in policies: Jinja2's immutable sandbox, strict about undefined names.

A string is a template when it contains ``{{``, ``{%`` or ``{#``; anything else is used
as it is. Templates are compiled once, when the policy files load, and see::

    labels       the alert's labels            {{ labels.namespace }}
    annotations  the alert's annotations       {{ annotations.summary }}
    alert        status, fingerprint, startsAt, endsAt, generatorURL

A name the alert does not have is an error when rendered (``StrictUndefined``) unless the
template gives a default: ``{{ labels.deployment | default('conea-api') }}``. The sandbox
refuses private attributes (``{{ ''.__class__ }}``) and other unsafe calls.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import jinja2.sandbox

from monitor.actions.registry import AlertContext
from monitor.errors import PolicyError

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


class TemplateSyntaxError(ValueError):
    """A template does not compile; the message says where inside the template."""


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@dataclass(frozen=True)
class Template:
    """A compiled template (or a constant) and where it was written, for error messages."""

    source: str
    where: str = ""
    compiled: jinja2.Template | None = None

    @property
    def constant(self) -> bool:
        return self.compiled is None

    def render(self, context: Mapping[str, Any]) -> str:
        if self.compiled is None:
            return self.source
        try:
            return self.compiled.render(context)
        except jinja2.TemplateError as exc:
            raise PolicyError(f"{self.where}: cannot render {self.source!r}: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise PolicyError(f"{self.where}: cannot render {self.source!r}: {exc}") from exc


def compile(source: str, where: str = "") -> Template:
    """Compile ``source``; raises :class:`TemplateSyntaxError` if it is not valid Jinja2."""
    if not is_template(source):
        return Template(source, where)
    try:
        return Template(source, where, _compiled(source))
    except jinja2.TemplateSyntaxError as exc:
        line = f" (line {exc.lineno} of the template)" if "\n" in source else ""
        raise TemplateSyntaxError(f"template error: {exc.message}{line}") from None


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    """Jinja2 compiles slowly (~1 ms); policies repeat the same few templates."""
    return _ENV.from_string(source)


def check(source: str) -> str:
    """Pydantic validator: the string must compile if it is a template."""
    compile(source)
    return source


def _rfc3339(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.isoformat().replace("+00:00", "Z")


def context(alert: AlertContext) -> dict[str, Any]:
    """The names a template sees for ``alert``."""
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "alert": {
            "status": alert.status,
            "fingerprint": alert.fingerprint,
            "startsAt": _rfc3339(alert.starts_at),
            "endsAt": _rfc3339(alert.ends_at),
            "generatorURL": alert.generator_url,
        },
    }


def render_tree(tree: Any, ctx: Mapping[str, Any]) -> Any:
    """Render a nested value (dicts, lists) whose strings were compiled to :class:`Template`."""
    if isinstance(tree, Template):
        return tree.render(ctx)
    if isinstance(tree, Mapping):
        return {k: render_tree(v, ctx) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, ctx) for v in tree]
    return tree
