"""What an admin sees: metrics, health, the HTTP server for both, alerts, logs, traces
and the views of streams the CLI and the gauges share."""
