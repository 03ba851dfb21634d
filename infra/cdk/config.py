"""What one deployment is made of: the settings its names come from, and the knobs that are not names.

Resource names come from ``resource_spec(settings)`` only. The settings are read once here, in the CDK
app, from CDK context (``cdk deploy -c prefix=acme -c alert_emails=ops@acme.io``; any field of
``tasks.settings.Settings`` by its own name) over the usual ``CANDLEFLOW_*`` environment, and the
containers get the same fields back as ``CANDLEFLOW_*`` variables (``container_environment``), so the
stack and the code running in it resolve one spec. Values known only at deploy time (the certificate,
the Prefect API URL, the worker count) are CloudFormation parameters, declared in ``stack.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from aws_cdk import aws_logs as logs
from pydantic import SecretStr

from tasks.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
CDK_JSON = REPO_ROOT / "cdk.json"

# Settings of the embedded stack on a laptop: they mean nothing in a container on AWS.
LOCAL_ONLY_FIELDS = frozenset(
    {"emulator_host", "emulator_port", "prefect_port", "replay_speed", "state_dir", "api_host"}
)


@dataclass(frozen=True, slots=True)
class TaskSize:
    """Fargate size and count of one service (placeholders: see docs/aws.md, "Sizing")."""

    cpu: int
    memory_mib: int
    count: int = 1


@dataclass(frozen=True, slots=True)
class Sizing:
    producer: TaskSize = TaskSize(256, 512)
    sampler: TaskSize = TaskSize(256, 512)
    worker: TaskSize = TaskSize(2048, 8192)  # count is the WorkerCount parameter
    api: TaskSize = TaskSize(512, 1024)
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    access_logs_expire_days: int = 365
    raw_to_infrequent_access_days: int = 30
    raw_to_glacier_ir_days: int = 90
    athena_results_expire_days: int = 30
    athena_bytes_scanned_cutoff: int = 10 * 1024**3  # a query scanning more is cancelled
    noncurrent_versions_expire_days: int = 30
    queue_age_alarm_s: int = 300  # the ingest is falling behind past this (as tasks/status.py says)
    crawler_schedule: str = "cron(15 3 * * ? *)"  # daily; partitions are registered by the API


@dataclass(frozen=True, slots=True)
class DeployNames:
    """Names of what only the AWS deployment has (the data resources' names are in the spec)."""

    prefix: str

    @property
    def stack(self) -> str:
        return self.prefix

    @property
    def cluster(self) -> str:
        return self.prefix

    def service(self, component: str) -> str:
        return f"{self.prefix}-{component}"

    def log_group(self, component: str) -> str:
        return f"/{self.prefix}/{component}"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.prefix}"

    @property
    def prefect_api_key_secret(self) -> str:
        return f"{self.prefix}/prefect-api-key"

    @property
    def web_acl(self) -> str:
        return f"{self.prefix}-api"

    @property
    def waf_log_group(self) -> str:
        return f"aws-waf-logs-{self.prefix}"  # WAF logs only to groups named aws-waf-logs-*


@dataclass(frozen=True, slots=True)
class DeployConfig:
    """One deployment: settings (and so every name), the image, and the sizing."""

    settings: Settings
    # None: the repository's Dockerfile, built and pushed by `cdk deploy`.
    image_uri: str | None = None
    nat_gateways: int = 1
    sizing: Sizing = field(default_factory=Sizing)

    @property
    def names(self) -> DeployNames:
        return DeployNames(self.settings.prefix)

    @property
    def work_pool(self) -> str:
        return work_pool_name(PREFECT_YAML.read_text())


def config_from_context(get: Callable[[str], object]) -> DeployConfig:
    """The deployment a CDK app's context describes; ``get`` is ``app.node.try_get_context``."""
    given: dict[str, Any] = {name: get(name) for name in Settings.model_fields}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    image = get("image_uri")
    nat = get("nat_gateways")
    return DeployConfig(
        settings,
        image_uri=str(image) if image else None,
        nat_gateways=int(str(nat)) if nat is not None else 1,
    )


def cdk_context() -> dict[str, Any]:
    """cdk.json's context (the feature flags), for an app run without the CDK CLI, and tests."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


def work_pool_name(prefect_yaml: str) -> str:
    """The one work pool every deployment of ``prefect.yaml`` runs on (the worker service polls it)."""
    document = yaml.safe_load(prefect_yaml)
    pools = {d["work_pool"]["name"] for d in document.get("deployments", []) if "work_pool" in d}
    if len(pools) != 1:
        raise ValueError(
            f"prefect.yaml: the AWS worker serves one work pool, the deployments name {sorted(pools)}"
        )
    return str(pools.pop())


def container_environment(settings: Settings) -> dict[str, str]:
    """``CANDLEFLOW_*`` variables carrying every field the deployer set, so containers see this spec.

    Secrets are refused: they belong in Secrets Manager, injected by ECS, never in a task definition.
    """
    env: dict[str, str] = {}
    for name in sorted(settings.model_fields_set - LOCAL_ONLY_FIELDS):
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            raise ValueError(
                f"CANDLEFLOW_{name.upper()} is a secret: store it in Secrets Manager and inject it "
                "into the task definition instead of passing it as CDK context"
            )
        env[f"CANDLEFLOW_{name.upper()}"] = _env_text(value)
    return env


def _env_text(value: object) -> str:
    """A setting as the environment spells it (lists comma-separated, mappings as JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"))
    return str(value)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} into a CANDLEFLOW_* variable")
