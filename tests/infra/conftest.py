"""The stack, synthesized once per session, twice over: with the default prefix and with another one.

jsii starts a Node.js process and loads aws-cdk-lib (~8 s), and a synth takes a few seconds more, so
both stacks live in one app and are synthesized together. cfn-lint and checkov (slow to import) start
in the background once the tests are collected, get the default template's path as soon as it is
written (``template_checks``), and run while the other tests do; the tests reading their verdicts
come last in this directory (test_template_checks.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii warns in a 12-line banner that Node 20 is past its end of life; the warning is in docs/aws.md.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment  # after the variable: jsii reads it at start
from aws_cdk.assertions import Template

from infra.cdk.config import REPO_ROOT, DeployConfig, cdk_context
from infra.cdk.stack import CandleflowStack
from infra.spec import ResourceSpec
from tasks.settings import Settings

REGION = "eu-west-1"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/candleflow:test"
CHECKOV = "checkov==3.3.30"  # run by uv in its own environment: its pins clash with ours (boto3)
CHECKOV_EXCLUDE_NEWER = "2026-11-01"  # and its dependencies as they were then, for the same result


@dataclass(frozen=True)
class Synth:
    stack: CandleflowStack
    template: Template
    json: dict[str, Any]
    path: Path

    @property
    def spec(self) -> ResourceSpec:
        return self.stack.spec

    @property
    def config(self) -> DeployConfig:
        return self.stack.config

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, of one type."""
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == resource_type}

    def props(self, resource_type: str) -> list[dict[str, Any]]:
        return [r["Properties"] for r in self.resources(resource_type).values()]

    def one(self, resource_type: str, **match: Any) -> tuple[str, dict[str, Any]]:
        """The one resource of that type whose properties include ``match``: (logical id, props)."""
        found = [
            (k, r["Properties"])
            for k, r in self.resources(resource_type).items()
            if all(r["Properties"].get(p) == v for p, v in match.items())
        ]
        assert len(found) == 1, f"{len(found)} {resource_type} with {match}"
        return found[0]


@dataclass(frozen=True)
class Synths:
    default: Synth
    renamed: Synth


def default_settings() -> Settings:
    with no_candleflow_environment():
        return Settings(alert_emails=["ops@example.com"], alert_sms_numbers=["+61412345678"])


def renamed_settings() -> Settings:
    with no_candleflow_environment():
        return Settings(
            prefix="acme-x",
            lake_bucket="acme-x-lake-123456789012",
            symbols=["BTCUSDT"],
            max_receive_count=7,
            visibility_timeout_s=300,
        )


@pytest.fixture(scope="session")
def synths(tmp_path_factory: pytest.TempPathFactory) -> Synths:
    out = tmp_path_factory.mktemp("cdk.out")
    app = App(context=cdk_context(), outdir=str(out))
    stacks = [
        CandleflowStack(app, DeployConfig(s(), image_uri=IMAGE), env=Environment(region=REGION))
        for s in (default_settings, renamed_settings)
    ]
    app.synth()
    synths = []
    for stack in stacks:
        path = out / stack.template_file
        body = json.loads(path.read_text())
        synths.append(Synth(stack, Template.from_json(body), body, path))
    return Synths(*synths)


@pytest.fixture(scope="session")
def synth(synths: Synths) -> Synth:
    return synths.default


CHECKS = pytest.StashKey[dict[str, subprocess.Popen[str]]]()
CHECK_SCRIPT = Path(__file__).with_name("template_check.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start cfn-lint and checkov now when their tests will run: they import while we synthesize."""
    if not any(item.path.name == "test_template_checks.py" for item in items):
        return
    checks = {"cfn-lint": _start([sys.executable, str(CHECK_SCRIPT), "cfn-lint", REGION])}
    uv = _uv()
    if uv is not None:  # otherwise the checkov test says so
        checkov = [uv, "tool", "run", "--exclude-newer", CHECKOV_EXCLUDE_NEWER, "--from", CHECKOV]
        checks["checkov"] = _start([*checkov, "python", str(CHECK_SCRIPT), "checkov"])
    config.stash[CHECKS] = checks


def pytest_unconfigure(config: pytest.Config) -> None:
    for process in config.stash.get(CHECKS, {}).values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )


@dataclass(frozen=True)
class TemplateChecks:
    """cfn-lint's and checkov's processes, given the default template: read their verdicts."""

    cfn_lint: subprocess.Popen[str]
    checkov: subprocess.Popen[str] | None  # None: no uv to run it with


@pytest.fixture(scope="session")
def template_checks(synth: Synth, pytestconfig: pytest.Config) -> TemplateChecks:
    processes = pytestconfig.stash[CHECKS]
    for process in processes.values():
        assert process.stdin is not None
        process.stdin.write(f"{synth.path}\n")
        process.stdin.flush()  # the tests' communicate() closes it
    return TemplateChecks(processes["cfn-lint"], processes.get("checkov"))


@pytest.fixture(scope="session", autouse=True)
def _feed_template_checks_early(request: pytest.FixtureRequest) -> None:
    """Give the checks the template with the first test, so they run while the others do."""
    if CHECKS in request.config.stash:
        request.getfixturevalue("template_checks")


def _uv() -> str | None:
    """uv as the scripts find it: on PATH, or installed into .candleflow/tools by them."""
    local = REPO_ROOT / ".candleflow" / "tools" / "bin" / "uv"
    return os.environ.get("UV") or shutil.which("uv") or (str(local) if local.exists() else None)


@contextmanager
def no_candleflow_environment() -> Iterator[None]:
    """Settings built inside see none of the CANDLEFLOW_* variables of the shell running the tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("CANDLEFLOW_")]:
            patch.delenv(name)
        yield
