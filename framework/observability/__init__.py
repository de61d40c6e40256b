"""What an admin sees: metrics, health, the HTTP server for both, alerts, logs, traces
and the views of streams the CLI and the gauges share.

Not API: import what users write from ``streamboot``; these modules may change between
minor versions.
"""
