"""Templates in policies: Jinja2's immutable sandbox, strict about undefined names, bounded.

A string is a template when it contains ``{{``, ``{%`` or ``{#``; anything else is used
as it is. Templates are compiled once, when the policy files load, and see::

    labels       the alert's labels            {{ labels.namespace }}
    annotations  the alert's annotations       {{ annotations.summary }}
    alert        status, fingerprint, startsAt, endsAt, generatorURL

A name the alert does not have is an error when rendered (``StrictUndefined``) unless the
template gives a default: ``{{ labels.deployment | default('conea-api') }}``. The sandbox
refuses private attributes (``{{ ''.__class__ }}``) and other unsafe calls.

Rendering is bounded: no value and no output may exceed :data:`MAX_CHARS` characters
(``'x' * 200000000`` is refused before it is built), a render takes at most
:data:`MAX_STEPS` loop iterations and calls, and only the filters and string methods
that cannot multiply their input are available. A refusal is a :class:`PolicyError`
naming the template.

``verify.promql`` templates (``compile(..., promql=True)``) escape every ``{{ ... }}`` as
the contents of a PromQL string literal (backslash, double quote, line breaks), so a
label value cannot end the string and add to the query; ``| raw`` inserts a value as it
is, and ``| re_escape`` quotes regex metacharacters for a ``=~`` selector.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import jinja2.sandbox
from jinja2 import nodes

from monitor.alerts.context import AlertContext
from monitor.errors import PolicyError

#: The most characters (or items) a value or a rendered template may have.
MAX_CHARS = 65536
#: The most loop iterations and calls one render may take.
MAX_STEPS = 10000
_MAX_INT_BITS = 4096
_MAX_RANGE = 10000

# Filters that cannot make their output much larger than their input (join and replace
# are checked first); center, indent, wordwrap, format, batch, slice, ... are not here.
_FILTERS = frozenset(
    {
        *("abs", "attr", "capitalize", "count", "d", "default", "dictsort", "first", "float"),
        *("groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max"),
        *("min", "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr"),
        *("sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate"),
        *("unique", "upper", "urlencode", "wordcount"),
    }
)
_STR_METHODS = frozenset(
    {
        *("lower", "upper", "title", "capitalize", "casefold", "strip", "lstrip", "rstrip"),
        *("split", "rsplit", "splitlines", "startswith", "endswith", "find", "rfind", "index"),
        *("rindex", "count", "partition", "rpartition", "removeprefix", "removesuffix"),
        *("replace", "join", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"),
    }
)
_FORMAT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class TemplateLimitError(jinja2.sandbox.SecurityError):
    """A template went over a limit of the sandbox (size of a value, steps)."""


@dataclass
class _Budget:
    steps: int = MAX_STEPS


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("template_budget")


def _step() -> None:
    budget = _BUDGET.get(None)
    if budget is None:
        return  # constant folding at compile time
    budget.steps -= 1
    if budget.steps < 0:
        raise TemplateLimitError(f"more than {MAX_STEPS} loop iterations and calls")


def _weight(value: Any) -> int:
    """Characters and items of ``value``, nested ones included (a list may hold one big
    list many times); counting stops just past :data:`MAX_CHARS`."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 1
    total = len(value)
    pending: list[Any] = [value]
    while pending and total <= MAX_CHARS:
        current = pending.pop()
        items = current.items() if isinstance(current, dict) else current
        for item in items:
            for part in item if isinstance(current, dict) else (item,):
                if isinstance(part, str):
                    total += len(part)
                elif isinstance(part, list | tuple | dict | set | frozenset):
                    total += len(part)
                    pending.append(part)
            if total > MAX_CHARS:
                break
    return total


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        if _weight(value) > MAX_CHARS:
            raise TemplateLimitError(f"a value of more than {MAX_CHARS} characters or items")
    elif isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise TemplateLimitError(f"a number of more than {_MAX_INT_BITS} bits")
    return value


def _would_be(size: int) -> None:
    if size > MAX_CHARS:
        raise TemplateLimitError(f"a value of {size} characters or items (at most {MAX_CHARS})")


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > _MAX_RANGE:
        raise TemplateLimitError(f"a range of {len(numbers)} numbers (at most {_MAX_RANGE})")
    return numbers


def _check_join(items: Iterable[Any], sep: Any = "") -> list[Any]:
    items = list(items)
    total = len(items) * len(str(sep))
    for item in items:
        total += _weight(item)
        if total > MAX_CHARS:
            break
    _would_be(total)
    return items


def _check_replace(text: Any, old: Any, new: Any, count: int | None = None) -> None:
    text, old, new = str(text), str(old), str(new)
    hits = len(text) + 1 if not old else text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    _would_be(len(text) + hits * max(0, len(new) - len(old)))


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(function)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name in ("join", "replace"):
            bound = signature.bind(*args, **kwargs)
            given = bound.arguments
            if name == "join":
                given["value"] = _check_join(given["value"], given.get("d", ""))
            else:
                _check_replace(given["s"], given["old"], given["new"], given.get("count"))
            args, kwargs = bound.args, bound.kwargs
        return _sized(function(*args, **kwargs))

    return bounded


class _BoundedSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox with sizes and steps bounded (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            **options,
        )
        self.filters = {name: _bounded_filter(name, self.filters[name]) for name in _FILTERS}
        self.filters["_counted"] = _counted
        self.filters["_sized"] = _sized
        self.filters["re_escape"] = re_escape
        self.filters["promql"] = promql_string
        self.globals = {"range": _range, "dict": dict}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
        for concat in list(tree.find_all(nodes.Concat)):
            concat.nodes = [
                nodes.Filter(n, "_sized", [], [], None, None, lineno=n.lineno) for n in concat.nodes
            ]
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, str) and attribute not in _STR_METHODS and hasattr(str, attribute):
            raise jinja2.sandbox.SecurityError(
                f"str.{attribute} is not allowed in policy templates"
            )
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, str) and isinstance(argument, str):
            return self.getattr(obj, argument)
        return super().getitem(obj, argument)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _would_be(_weight(seq) * max(times, 0))
            both_int = isinstance(left, int) and isinstance(right, int)
            if both_int and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise TemplateLimitError(f"a number of more than {_MAX_INT_BITS} bits")
        elif operator == "**":
            both_int = isinstance(left, int) and isinstance(right, int)
            if both_int and abs(left) > 1 and right * left.bit_length() > _MAX_INT_BITS:
                raise TemplateLimitError(f"a number of more than {_MAX_INT_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            for width in _FORMAT_WIDTH.finditer(left):
                for part in width.groups():
                    if part == "*" or (part is not None and int(part) > MAX_CHARS):
                        raise TemplateLimitError(f"a format width over {MAX_CHARS}: {width[0]!r}")
        return _sized(super().call_binop(context, operator, left, right))

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        _step()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name not in _STR_METHODS:
                raise jinja2.sandbox.SecurityError(f"str.{name} is not allowed in policy templates")
            if name == "join" and args:
                args = (_check_join(args[0], owner),)
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, *args[:3])
        return _sized(super().call(__context, __obj, *args, **kwargs))


class Raw(str):
    """A value a PromQL template inserts as it is (``{{ value | raw }}``)."""


_PROMQL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PROMQL_SPECIAL = re.compile(r'[\\"\n\r\t\x00-\x1f\x7f\u2028\u2029\ud800-\udfff]')


def promql_string(value: Any) -> str:
    """``value`` as the contents of a double-quoted PromQL string literal."""

    def escape(found: re.Match[str]) -> str:
        char = found[0]
        if "\ud800" <= char <= "\udfff":
            return "\\ufffd"  # a lone surrogate (from a label's JSON) is no character
        return _PROMQL_ESCAPES.get(char) or f"\\u{ord(char):04x}"

    return _PROMQL_SPECIAL.sub(escape, str(value))


def re_escape(value: Any) -> str:
    """Quote the regex metacharacters of ``value`` (Go's ``regexp.QuoteMeta``)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", str(value))


def _promql_finalize(value: Any) -> str:
    return str(value) if isinstance(value, Raw) else promql_string(value)


_ENV = _BoundedSandbox()
_PROMQL_ENV = _BoundedSandbox(finalize=_promql_finalize)
_PROMQL_ENV.filters["raw"] = Raw


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

    @functools.cached_property
    def label_keys(self) -> tuple[str, ...] | None:
        """The alert labels the output depends on, when it depends on nothing else (only
        ``labels.x`` / ``labels["x"]``, filters and constants); else None. Two alerts
        equal on these labels render the same: the engine reuses the result."""
        if self.compiled is None:
            return ()
        return _label_keys(self.source)

    def render(self, context: Mapping[str, Any]) -> str:
        if self.compiled is None:
            return self.source
        token = _BUDGET.set(_Budget())
        try:
            chunks = []
            size = 0
            for chunk in self.compiled.generate(context):
                size += len(chunk)
                if size > MAX_CHARS:
                    raise TemplateLimitError(f"output over {MAX_CHARS} characters")
                chunks.append(chunk)
            return "".join(chunks)
        except jinja2.TemplateError as exc:
            raise PolicyError(f"{self.where}: cannot render {self.source!r}: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
            raise PolicyError(f"{self.where}: cannot render {self.source!r}: {exc}") from exc
        finally:
            _BUDGET.reset(token)


def compile(source: str, where: str = "", *, promql: bool = False) -> Template:
    """Compile ``source``; raises :class:`TemplateSyntaxError` if it is not valid Jinja2.

    With ``promql``, every ``{{ ... }}`` is escaped for a PromQL string literal.
    """
    if not is_template(source):
        return Template(source, where)
    try:
        return Template(source, where, _compiled(source, promql))
    except jinja2.TemplateSyntaxError as exc:
        line = f" (line {exc.lineno} of the template)" if "\n" in source else ""
        raise TemplateSyntaxError(f"template error: {exc.message}{line}") from None


@functools.lru_cache(maxsize=4096)
def _label_keys(source: str) -> tuple[str, ...] | None:
    tree = _ENV.parse(source)
    names = list(tree.find_all(nodes.Name))
    keys: list[str] = []
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "labels":
            keys.append(node.attr)
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name == "labels":
            if not isinstance(item.arg, nodes.Const) or not isinstance(item.arg.value, str):
                return None
            keys.append(item.arg.value)
    if any(n.name != "labels" for n in names) or len(keys) != len(names):
        return None  # another name, or ``labels`` used whole (e.g. iterated)
    return tuple(sorted(set(keys)))


def label_uses(source: str) -> list[tuple[str, bool]]:
    """The alert labels a template names (``labels.x``, ``labels["x"]``) in order, each
    with whether the template allows it to be missing (``labels.x | default(...)``,
    ``labels.x is defined``, ``"x" in labels``); ``labels.get("x")`` is never a use."""
    if not is_template(source):
        return []
    tree = _ENV.parse(source)
    called = {id(c.node) for c in tree.find_all(nodes.Call)}
    defaulted = {id(f.node) for f in tree.find_all(nodes.Filter) if f.name in ("default", "d")}
    guarded: set[str] = set()
    for test in tree.find_all(nodes.Test):
        name = _label_name(test.node)
        if test.name in ("defined", "undefined") and name is not None:
            guarded.add(name)
    for compare in tree.find_all(nodes.Compare):
        key, operands = compare.expr, compare.ops
        for operand in operands:
            container = operand.expr
            if not (isinstance(key, nodes.Const) and isinstance(container, nodes.Name)):
                continue
            if operand.op in ("in", "notin") and container.name == "labels":
                guarded.add(str(key.value))
    uses: dict[str, bool] = {}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = _label_name(node)
        if name is None or id(node) in called:
            continue
        safe = id(node) in defaulted or name in guarded
        uses[name] = uses.get(name, True) and safe
    return list(uses.items())


def _label_name(node: nodes.Node) -> str | None:
    if not (isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name)):
        return None
    if node.node.name != "labels":
        return None
    if isinstance(node, nodes.Getattr):
        return node.attr
    arg = node.arg
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, promql: bool = False) -> jinja2.Template:
    """Jinja2 compiles slowly (~1 ms); policies repeat the same few templates."""
    return (_PROMQL_ENV if promql else _ENV).from_string(source)


def check(source: str) -> str:
    """Pydantic validator: the string must compile if it is a template."""
    compile(source)
    return source


def check_promql(source: str) -> str:
    """Pydantic validator for ``verify.promql``."""
    compile(source, promql=True)
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
