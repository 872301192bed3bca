"""A small, typed layer over ``grafana-foundation-sdk`` for conea-monitor's dashboards.

Every panel gets the ``$datasource`` variable as its data source, a stable numeric id
(its position), ``refId``s A, B, C... and explicit options, so the generated JSON is the
same on every run and imports into Grafana without "missing options" surprises. The
dashboards are defined in ``scripts/dashboards_app.py``, ``scripts/dashboards_data.py``
and ``scripts/dashboards_conea.py``; ``scripts/build_dashboards.py`` writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import table as gtable
from grafana_foundation_sdk.builders import timeseries as gtimeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import encoder
from grafana_foundation_sdk.models import common as mcommon
from grafana_foundation_sdk.models import dashboard as mdash
from grafana_foundation_sdk.models import prometheus as mprom

DATASOURCE = mdash.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "conea"
REFRESH = "1m"

PanelBuilder = cogbuilder.Builder[mdash.Panel]

#: The SDK's AnnotationQuery has no builtIn / step / titleFormat, so annotations are
#: written as Grafana stores them. The first is Grafana's own (alerts, manual notes);
#: the second marks every remediation conea-monitor ran (counting a counter's first
#: sample too, like the ConeaMonitor* alert rules) on every dashboard.
REMEDIATION_EXPR = (
    "sum by (policy, action, outcome) ("
    "conea_monitor_executions_total"
    " - (conea_monitor_executions_total offset 1m or conea_monitor_executions_total * 0)"
    ") > 0"
)
ANNOTATIONS: list[dict[str, Any]] = [
    {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    },
    {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "enable": True,
        "hide": False,
        "iconColor": "orange",
        "name": "Remediations",
        "expr": REMEDIATION_EXPR,
        "step": "1m",
        "titleFormat": "{{action}} {{outcome}}",
        "textFormat": "policy {{policy}}",
        "tagKeys": "policy,action,outcome",
        "useValueForTime": False,
    },
]


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and its legend (Grafana's ``{{label}}`` syntax)."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _target(query: Query, ref_id: str) -> gprom.Dataquery:
    target = gprom.Dataquery().expr(query.expr).ref_id(ref_id).datasource(DATASOURCE)
    if query.legend:
        target = target.legend_format(query.legend)
    target = target.instant() if query.instant else target.range()
    if query.table:
        target = target.format(mprom.PromQueryFormat.TABLE)
    return target


def _thresholds(steps: list[tuple[float | None, str]]) -> gdash.ThresholdsConfig:
    return (
        gdash.ThresholdsConfig()
        .mode(mdash.ThresholdsMode.ABSOLUTE)
        .steps([mdash.Threshold(value=value, color=color) for value, color in steps])
    )


#: Green below the first value, then orange, then red (None: the base step).
def traffic_light(warn: float, crit: float) -> list[tuple[float | None, str]]:
    return [(None, "green"), (warn, "orange"), (crit, "red")]


def timeseries(
    title: str,
    queries: list[Query],
    *,
    unit: str,
    description: str,
    span: int = 12,
    height: int = 8,
    stack: bool = False,
    min_value: float | None = 0,
    max_value: float | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
) -> gtimeseries.Panel:
    """A time series panel; with ``thresholds`` they are drawn as dashed lines."""
    panel = (
        gtimeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(height)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            gcommon.VizLegendOptions()
            .display_mode(mcommon.LegendDisplayMode.TABLE)
            .placement(mcommon.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            gcommon.VizTooltipOptions()
            .mode(mcommon.TooltipDisplayMode.MULTI)
            .sort(mcommon.SortOrder.DESCENDING)
        )
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if stack:
        panel = panel.stacking(
            gcommon.StackingConfig().mode(mcommon.StackingMode.NORMAL)
        ).fill_opacity(60)
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds)).thresholds_style(
            gcommon.GraphThresholdsStyleConfig().mode(mcommon.GraphTresholdsStyleMode.DASHED)
        )
    for index, query in enumerate(queries):
        panel = panel.with_target(_target(query, chr(ord("A") + index)))
    return panel


def stat(
    title: str,
    query: Query,
    *,
    unit: str,
    description: str,
    span: int = 6,
    height: int = 4,
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: dict[str, tuple[str, str]] | None = None,
) -> gstat.Panel:
    """A single-value panel (last value), coloured by ``thresholds``; ``mappings`` turn
    values into text, e.g. ``{"0": ("DOWN", "red")}``."""
    panel = (
        gstat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(height)
        .reduce_options(gcommon.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(mcommon.BigValueColorMode.BACKGROUND)
        .graph_mode(mcommon.BigValueGraphMode.AREA)
        .text_mode(mcommon.BigValueTextMode.AUTO)
        .justify_mode(mcommon.BigValueJustifyMode.AUTO)
        .orientation(mcommon.VizOrientation.AUTO)
        .thresholds(_thresholds(thresholds or [(None, "blue")]))
        .with_target(_target(query, "A"))
    )
    if mappings:
        panel = panel.mappings(
            [
                mdash.ValueMap(
                    options={
                        value: mdash.ValueMappingResult(text=text, color=color, index=index)
                        for index, (value, (text, color)) in enumerate(sorted(mappings.items()))
                    }
                )
            ]
        )
    return panel


def table(
    title: str, query: Query, *, unit: str, description: str, span: int = 12, height: int = 8
) -> gtable.Panel:
    """A table of an instant query's series (one row per series, labels as columns)."""
    return (
        gtable.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(height)
        .show_header(True)
        .with_target(_target(Query(query.expr, query.legend, instant=True, table=True), "A"))
        .with_transformation(
            mdash.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}}
            )
        )
    )


def datasource_variable() -> gdash.DatasourceVariable:
    return gdash.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(name: str, label: str, query: str) -> gdash.QueryVariable:
    """A multi-value variable from ``label_values(...)`` with "All" meaning ``.*``."""
    return (
        gdash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(mdash.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(mdash.VariableSort.ALPHABETICAL_ASC)
        .current(mdash.VariableOption(selected=True, text="All", value="$__all"))
    )


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[PanelBuilder]


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[cogbuilder.Builder[mdash.VariableModel]],
    rows: list[Row],
) -> dict[str, Any]:
    """The dashboard as a JSON-ready dict, with ids and links filled in."""
    builder = (
        gdash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .refresh(REFRESH)
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(mdash.DashboardCursorSync.CROSSHAIR)
        .link(
            gdash.DashboardLink("Conea dashboards")
            .type(mdash.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(datasource_variable())
    )
    for variable in variables:
        builder = builder.with_variable(variable)
    for row in rows:
        builder = builder.with_row(gdash.Row(row.title))
        for panel in row.panels:
            builder = builder.with_panel(panel)
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=encoder.JSONEncoder))
    for index, panel in enumerate(data["panels"], start=1):
        panel["id"] = index
        if panel.get("options") is None and panel["type"] != "row":
            panel["options"] = {}
    for variable in data["templating"]["list"]:
        variable.pop("id", None)  # the SDK's all-zero UUID; Grafana needs none
    data["annotations"] = {"list": [dict(annotation) for annotation in ANNOTATIONS]}
    return data


def render(data: dict[str, Any]) -> str:
    """The committed text of one dashboard: sorted keys, two-space indent, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
