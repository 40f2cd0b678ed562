"""Telemetry: drainpipe's own structured logs, Prometheus counters and stage health."""
