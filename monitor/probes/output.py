"""What one probe reports: its metric families and its trace.

Each probe gets a fresh :class:`Recorder`, so a probe's output never mixes with
another probe's or with the service's own ``/metrics``. A recorder holds plain tuples,
not live ``Gauge`` objects, and writes the text exposition itself
(:meth:`Recorder.render`); no ``CollectorRegistry`` is built for a probe. A recorder
is still a ``Collector``: :func:`new_registry` puts one in a registry, which is how a
test pins ``render()`` to what ``prometheus_client.generate_latest`` writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Metric, utils
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Recorder(Collector):
    """Gauges written by a prober, collected once when the probe answers.

    Values are kept as plain tuples; ``collect()`` turns them into
    ``GaugeMetricFamily`` objects for a registry, and :meth:`render` writes the text
    exposition directly (the hot path of ``/probe``).
    """

    def __init__(self) -> None:
        # name -> (help, samples as (labels, value))
        self._families: dict[str, tuple[str, list[tuple[Mapping[str, str], float]]]] = {}

    def gauge(self, name: str, documentation: str, value: float) -> None:
        """Set an unlabelled gauge (a later call replaces the value)."""
        self._families[name] = (documentation, [(_NO_LABELS, float(value))])

    def labelled(
        self, name: str, documentation: str, labels: Mapping[str, str], value: float
    ) -> None:
        """Add one sample of a labelled gauge."""
        family = self._families.get(name)
        if family is None:
            family = (documentation, [])
            self._families[name] = family
        family[1].append((labels, float(value)))

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The recorded value of a sample, or None."""
        family = self._families.get(name)
        if family is None:
            return None
        for sample_labels, value in family[1]:
            if labels is None or dict(sample_labels) == dict(labels):
                return value
        return None

    def collect(self) -> Iterator[Metric]:
        for name in sorted(self._families):
            documentation, samples = self._families[name]
            labelnames = list(samples[0][0]) if samples else []
            family = GaugeMetricFamily(name, documentation, labels=labelnames)
            for labels, value in samples:
                family.add_metric(list(labels.values()), value)
            yield family

    def render(self) -> bytes:
        """The text exposition (format 0.0.4) of what was recorded.

        Byte for byte what ``prometheus_client.generate_latest`` writes for these
        gauges (a test checks it), without building metric objects first: that was a
        fifth of the CPU of a probe at thousands of probes per second.
        """
        lines = []
        number = utils.floatToGoString
        for name in sorted(self._families):
            documentation, samples = self._families[name]
            head = _HEADS.get((name, documentation))
            if head is None:
                head = f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} gauge"
                if len(_HEADS) < _MAX_HEADS:
                    _HEADS[name, documentation] = head
            lines.append(head)
            for labels, value in samples:
                if labels:
                    text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                    lines.append(f"{name}{{{text}}} {number(value)}")
                else:
                    lines.append(f"{name} {number(value)}")
        lines.append("")
        return "\n".join(lines).encode()


_NO_LABELS: Mapping[str, str] = {}
# A family's HELP and TYPE lines, written once: names and help texts are the probers'
# constants, so this stays small; the bound only guards against a prober that is not.
_HEADS: dict[tuple[str, str], str] = {}
_MAX_HEADS = 1000


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def new_registry() -> tuple[CollectorRegistry, Recorder]:
    registry = CollectorRegistry(auto_describe=False)
    recorder = Recorder()
    registry.register(recorder)
    return registry, recorder


class Trace:
    """The human-readable log of one probe, shown with ``debug=true``.

    Only when ``enabled`` are lines kept: the normal path pays for nothing but the call.
    Lines must never carry credentials. What a target sends ends up in lines, so they
    are bounded: ``MAX_LINE`` characters each, ``MAX_LINES`` lines in all.
    """

    MAX_LINE = 500
    MAX_LINES = 1000

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lines: list[str] = []
        self._start = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.enabled:
            if len(self.lines) > self.MAX_LINES:
                return
            if len(self.lines) == self.MAX_LINES:
                message = "… further lines left out"
            elif len(message) > self.MAX_LINE:
                more = len(message) - self.MAX_LINE
                message = f"{message[: self.MAX_LINE]}… ({more} more characters)"
            elapsed = time.monotonic() - self._start
            self.lines.append(f"{elapsed * 1000:9.3f}ms {message}")
