"""cfn-lint and checkov on the synthesized template: nothing found, every suppression explained.

Both start in the background as soon as the tests are collected and get the template as soon as it is
synthesized (conftest); these tests only collect their verdicts, so they come last in this directory.
"""

from __future__ import annotations

import json
from typing import Any

from infra.cdk.config import REPO_ROOT
from tests.infra.conftest import Synth, TemplateChecks

DOCS = REPO_ROOT / "docs" / "aws.md"
TIMEOUT_S = 180  # checkov's first run installs it (uv caches it for the next)


def test_cfn_lint_finds_nothing(template_checks: TemplateChecks) -> None:
    output, errors = template_checks.cfn_lint.communicate(timeout=TIMEOUT_S)
    assert template_checks.cfn_lint.returncode == 0, errors[-2000:]
    assert json.loads(output) == []


def test_checkov_fails_no_check(template_checks: TemplateChecks) -> None:
    assert template_checks.checkov is not None, "uv runs checkov: ./scripts/test.sh installs it"
    output, errors = template_checks.checkov.communicate(timeout=TIMEOUT_S)
    assert output.strip(), f"checkov printed no report: {errors[-2000:]}"
    report: Any = json.loads(output)
    (result,) = report if isinstance(report, list) else [report]
    assert result["check_type"] == "cloudformation"
    summary = result["summary"]
    failed = [(c["check_id"], c["resource"]) for c in result["results"]["failed_checks"]]
    assert failed == [], failed
    assert summary["passed"] > 150 and summary["parsing_errors"] == 0, summary


def test_every_suppression_is_in_the_docs_with_its_reason(synth: Synth) -> None:
    docs = " ".join(DOCS.read_text().split())
    suppressions = []
    for logical_id, resource in synth.json["Resources"].items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            suppressions.append((logical_id, skip["id"], skip["comment"]))
        reasons = metadata.get("candleflow:cfn-lint-reasons", {})
        for rule in metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", []):
            suppressions.append((logical_id, rule, reasons[rule]))
    assert suppressions
    for logical_id, check, reason in suppressions:
        assert f"`{check}`" in docs, (logical_id, check)
        assert " ".join(reason.split()) in docs, (logical_id, check, reason)
