"""The incident record of an execution: :func:`build` reads it, :meth:`Report.as_json`
and :func:`render_markdown` present it (``GET /api/v1/executions/{id}/report``,
``conea-monitor report ID``)."""

from monitor.report.markdown import render as render_markdown
from monitor.report.record import Alert, Entry, Report, Summary, build

__all__ = ["Alert", "Entry", "Report", "Summary", "build", "render_markdown"]
