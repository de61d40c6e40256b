"""What ``streamboot dashboards`` writes: a Grafana dashboard and Prometheus alerting rules
over the metrics of metrics.py, as plain data (the command only serialises them).

The thresholds live in one place, the application's YAML (``alerts:`` per listener): the
application checks them and sets ``streamboot_alert`` to 0 or 1, and the rules fire on that
gauge. Changing a threshold is then a redeploy of the app, never a regenerated rules file.
The rules of their own (dead letters growing, a listener not live, leases not renewed) need
no threshold. Every query aggregates with ``max`` over the processes that report a stream
(every process of a group reports the same XLEN, lag and pending), with ``sum`` over the
counters each process keeps of its own work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

RATE = "$__rate_interval"
"""Grafana's rate window; a test that runs the queries itself substitutes one."""


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    expr: str
    unit: str
    legend: str
    kind: str = "timeseries"
    description: str = ""


PANELS = [
    Panel("Lag (entries not yet delivered)",
          'max by (stream, group) (streamboot_group_lag{stream=~"$stream"})', "short",
          "{{stream}} / {{group}}"),
    Panel("Pending (delivered, not acked)",
          'max by (stream, group) (streamboot_group_pending{stream=~"$stream"})', "short",
          "{{stream}} / {{group}}"),
    Panel("Handled per second",
          f'sum by (listener) (rate(streamboot_entries_handled_total{{listener=~"$listener"}}'
          f'[{RATE}]))', "ops", "{{listener}}"),
    Panel("Handler failures per second",
          f'sum by (listener) (rate(streamboot_entries_failed_total{{listener=~"$listener"}}'
          f'[{RATE}]))', "ops", "{{listener}}", description="Each failed attempt."),
    Panel("Oldest pending entry's age",
          'max by (stream, group) (streamboot_group_oldest_pending_age_seconds'
          '{stream=~"$stream"})', "s", "{{stream}} / {{group}}",
          description="Since its publish (the time in its id)."),
    Panel("Dead letters waiting",
          'max by (listener, dlq) (streamboot_dead_letters{listener=~"$listener"})', "short",
          "{{dlq}}", description="XLEN of each dead-letter stream: replay or purge them."),
    Panel("Publish to handling, p99",
          f'histogram_quantile(0.99, sum by (listener, le) (rate('
          f'streamboot_delivery_latency_seconds_bucket{{listener=~"$listener"}}[{RATE}])))',
          "s", "{{listener}}", description="Each batch's oldest entry."),
    Panel("Handler duration, p99",
          f'histogram_quantile(0.99, sum by (listener, le) (rate('
          f'streamboot_handler_duration_seconds_bucket{{listener=~"$listener"}}[{RATE}])))',
          "s", "{{listener}}"),
    Panel("Listeners live",
          'min by (listener) (streamboot_listener_up{listener=~"$listener"})', "short",
          "{{listener}}", kind="stat", description="0: /healthz names the problem."),
    Panel("Renewal age (entries in hand)",
          'max by (listener) (streamboot_renewal_age_seconds{listener=~"$listener"})', "s",
          "{{listener}}", description="Alert before it nears pending_scan.min_idle."),
    Panel("Partition owners",
          'max by (listener, partition, member) '
          '(streamboot_partition_owner{listener=~"$listener"})', "short",
          "{{partition}}: {{member}}", kind="table",
          description="Who holds each partition's lease."),
    Panel("Alerts (thresholds of the YAML)",
          'max by (listener, stream, alert) (streamboot_alert{listener=~"$listener"})',
          "short", "{{listener}} {{alert}}", description="1 while crossed."),
]
"""The dashboard's panels, in order: each query must return data from a running app
(tests/observability/test_dashboards.py runs every one against a real Prometheus)."""


def dashboard() -> dict[str, Any]:
    """A Grafana dashboard (schema 39), its data source and filters as variables."""
    panels = []
    for index, panel in enumerate(PANELS):
        width = 24 if panel.kind == "table" else 12
        panels.append({
            "id": index + 1, "type": panel.kind, "title": panel.title,
            "description": panel.description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": width, "x": (index % 2) * 12 if width == 12 else 0,
                        "y": (index // 2) * 8},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": {},
            "targets": [{"refId": "A", "expr": panel.expr, "legendFormat": panel.legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"},
                         **({"format": "table", "instant": True}
                            if panel.kind == "table" else {})}],
        })
    return {
        "title": "Streamboot", "uid": "streamboot", "schemaVersion": 39, "version": 1,
        "tags": ["streamboot", "redis-streams"], "timezone": "browser", "editable": True,
        "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Prometheus"},
            _variable("listener", "label_values(streamboot_entries_handled_total, listener)"),
            _variable("stream", "label_values(streamboot_group_lag, stream)"),
        ]},
        "panels": panels,
    }


def _variable(name: str, query: str) -> dict[str, Any]:
    return {"name": name, "type": "query", "query": query, "includeAll": True,
            "multi": True, "allValue": ".*", "refresh": 2,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "current": {"text": "All", "value": "$__all"}}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    expr: str
    severity: str
    summary: str
    description: str


def rules(job: str = "streamboot") -> list[Rule]:
    """The alerting rules (how long each must hold before it fires: rule_groups); ``job``:
    the scrape job of prometheus.yml that scrapes the application's processes."""
    def crossed(alert: str) -> str:
        return f'max by (listener, stream) (streamboot_alert{{alert="{alert}"}}) == 1'

    return [
        Rule("StreambootLag", crossed("lag"), "warning",
             "{{ $labels.listener }} is behind on {{ $labels.stream }}",
             "The group's lag passed the listener's alerts.max_lag. Add workers, raise "
             "concurrency or batch_size; see the runbook (docs/operations.md)."),
        Rule("StreambootPendingPerConsumer", crossed("pending"), "warning",
             "{{ $labels.listener }} holds too many pending entries on {{ $labels.stream }}",
             "Pending per consumer passed alerts.max_pending_per_consumer."),
        Rule("StreambootOldestPendingIdle", crossed("oldest_pending_idle"), "warning",
             "An entry of {{ $labels.stream }} is stuck pending",
             "The oldest pending entry idled past alerts.max_oldest_pending_idle: its "
             "consumer died or hangs; recovery reclaims it after pending_scan.min_idle."),
        Rule("StreambootOldestPendingAge", crossed("oldest_pending_age"), "warning",
             "{{ $labels.stream }}'s oldest pending entry is old",
             "Published longer ago than alerts.max_oldest_pending_age and still not acked "
             "(a slow handler, retries, a held key)."),
        Rule("StreambootDeadLettersGrowing",
             "max by (listener, dlq) (delta(streamboot_dead_letters[10m])) > 0", "warning",
             "Dead letters are arriving in {{ $labels.dlq }}",
             "Entries were dead-lettered in the last 10 minutes: `streamboot dlq list "
             "{{ $labels.dlq }}` shows why; replay or purge them."),
        Rule("StreambootProcessDown", f'up{{job="{_label(job)}"}} == 0', "critical",
             "{{ $labels.instance }} cannot be scraped",
             "The process is down (killed, OOM, its host gone) or its /metrics unreachable: "
             "its entries are reclaimed after pending_scan.min_idle, its partitions moved "
             "after lease_ttl."),
        Rule("StreambootListenerDown", "streamboot_listener_up == 0", "critical",
             "{{ $labels.listener }} is not live on {{ $labels.instance }}",
             "/healthz names the problem: stopped, not polling, a handler past its timeout "
             "or renewals failing."),
        Rule("StreambootLeaseRenewalFailing", "streamboot_partition_renewal_failing == 1",
             "critical", "{{ $labels.instance }} cannot renew its partition leases",
             "Its partitions go to other members when the leases lapse; check its link "
             "to Redis."),
    ]


def rule_groups(alert_after: timedelta = timedelta(minutes=1),
                job: str = "streamboot") -> dict[str, Any]:
    """Prometheus's rule file, as data (``promtool check rules`` accepts it)."""
    hold = _duration(alert_after)
    return {"groups": [{"name": "streamboot", "rules": [
        {"alert": rule.name, "expr": rule.expr, "for": hold,
         "labels": {"severity": rule.severity},
         "annotations": {"summary": rule.summary, "description": rule.description}}
        for rule in rules(job)]}]}


def _duration(value: timedelta) -> str:
    """Prometheus's duration syntax: whole seconds (``90s``), ``0s`` for at once."""
    return f"{int(value.total_seconds())}s"


def _label(value: str) -> str:
    """A PromQL label value, quoted parts escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
