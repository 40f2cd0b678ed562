"""The Prometheus alerting rules name only metrics drainpipe exports, and each alert
has its section in the runbook."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from drainpipe.telemetry.metrics import SelfMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_rule_uses_exported_metrics_and_has_a_runbook_section() -> None:
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())["groups"][0]["rules"]
    families = {m.name for c in vars(SelfMetrics()).values() if hasattr(c, "describe")
                for m in c.describe()}  # fmt: skip
    exported = (
        families
        | {f"{f}_total" for f in families}
        | {f"{f}_{s}" for f in families for s in ("bucket", "count", "sum")}
    )
    runbook = (DOCS / "runbook.md").read_text()
    sections = {h.lower() for h in re.findall(r"^## (\w+)$", runbook, re.M)}
    for rule in rules:
        used = set(re.findall(r"\b(drainpipe_[a-z_]+)", rule["expr"]))
        assert used <= exported, (rule["alert"], used - exported)
        assert rule["alert"].lower() in sections, rule["alert"]
        assert rule["annotations"]["runbook"].endswith("#" + rule["alert"].lower())
