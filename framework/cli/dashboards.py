"""``streamboot dashboards --out DIR``: the Grafana dashboard and the Prometheus alerting
rules of observability/dashboards.py, written as files to import and to load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from ..config.durations import parse_duration
from ..config.loader import load_settings
from ..errors import ConfigError
from ..observability.dashboards import PANELS, dashboard, rule_groups
from ..process.shutdown import EXIT_CONFIG
from .common import USAGE, ConfigOption, err, fail, out, print_problems
from .run import ConfigArg

DASHBOARD_FILE = "streamboot-dashboard.json"
RULES_FILE = "streamboot-rules.yml"


def dashboards(
    config_arg: ConfigArg = None,
    config_option: ConfigOption = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", metavar="DIR",
                                          help="Folder to write the two files to.")] = Path("."),
    alert_after: Annotated[str, typer.Option(
        "--alert-after", metavar="DURATION",
        help="How long a condition must hold before its alert fires (the rules' `for`).")]
        = "1m",
    job: Annotated[str, typer.Option(
        help="The scrape job (prometheus.yml's job_name) of the app's processes: a "
             "process it cannot scrape fires StreambootProcessDown.")] = "streamboot",
) -> None:
    """Write a Grafana dashboard and Prometheus alerting rules for the app's metrics.

    The thresholds stay in the application file (`alerts:` per listener): the rules fire
    on the `streamboot_alert` gauge the app sets. With the file, the dashboard is titled
    after the application, and a file without `metrics.enabled` is pointed out."""
    try:
        hold = parse_duration(alert_after)
    except ValueError as exc:
        fail(USAGE, f"--alert-after: {exc}")
    config = config_arg or config_option
    board = dashboard()
    if config is not None:
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            print_problems(exc)
            raise typer.Exit(EXIT_CONFIG) from None
        board["title"] = f"Streamboot: {settings.application.name}"
        if not settings.metrics.enabled:
            err.print(f"note: {config} has metrics.enabled false: `streamboot run` serves "
                      "no /metrics for Prometheus to scrape until it is true", markup=False)
    board_file, rules_file = out_dir / DASHBOARD_FILE, out_dir / RULES_FILE
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        board_file.write_text(json.dumps(board, indent=2) + "\n")
        rules_file.write_text(yaml.safe_dump(rule_groups(hold, job), sort_keys=False,
                                             allow_unicode=True, width=100))
    except OSError as exc:
        fail(USAGE, f"cannot write to {str(out_dir)!r}: {exc.strerror or exc}")
    groups = rule_groups(hold, job)["groups"]
    out.print(f"wrote {board_file}: Grafana dashboard, {len(PANELS)} panels (import it; "
              "pick the Prometheus data source)", markup=False)
    out.print(f"wrote {rules_file}: {len(groups[0]['rules'])} alerting rules (add it to "
              "prometheus.yml's rule_files; `promtool check rules` it)", markup=False)
