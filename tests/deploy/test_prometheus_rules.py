"""The shipped Prometheus alerting rules (deploy/prometheus): ``promtool check rules`` passes,
their unit tests (``promtool test rules``) pass, and every clearlane metric a rule reads is one
the node exports (docs/API.md "Metrics") or one of the monitoring gauges (canaries, trust)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "clearlane-rules.yml"
TESTS = ROOT / "deploy" / "prometheus" / "clearlane-rules.test.yml"
MONITORING_GAUGES = {"clearlane_canary_status", "clearlane_trust_score"}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (.ci/run)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=RULES.parent, check=False)


@needs_promtool
def test_rules_check_and_unit_tests_pass() -> None:
    check = _promtool("check", "rules", RULES.name)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = _promtool("test", "rules", TESTS.name)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_rules_read_only_exported_metrics() -> None:
    import yaml

    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    exprs = " ".join(r["expr"] for r in rules)
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"\bclearlane_[a-z_]+", exprs)}
    api = (ROOT / "docs" / "API.md").read_text()
    documented = set(re.findall(r"`(clearlane_[a-z_]+)", api[api.index("## Metrics") :]))
    assert used - documented - MONITORING_GAUGES == set()
    for rule in rules:  # every alert is routable and explained
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/MONITORING.md#{rule['alert'].lower()}"
