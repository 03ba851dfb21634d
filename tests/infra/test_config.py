"""What a deployment is made of, without synthesizing: context, container variables, the work pool."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
import yaml
from pydantic import SecretStr

from infra.cdk.config import (
    PREFECT_YAML,
    config_from_context,
    container_environment,
    work_pool_name,
)
from tasks.settings import Settings


@pytest.fixture(autouse=True)
def _no_candleflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CANDLEFLOW_")]:
        monkeypatch.delenv(name)


def test_context_names_settings_fields_and_the_image() -> None:
    context = {
        "prefix": "acme",
        "alert_emails": "ops@acme.io,oncall@acme.io",
        "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/candleflow:1",
        "nat_gateways": "2",
        "unrelated": "ignored",
    }
    config = config_from_context(context.get)
    assert config.settings.prefix == "acme"
    assert config.settings.alert_emails == ["ops@acme.io", "oncall@acme.io"]
    assert config.image_uri == context["image_uri"]
    assert config.nat_gateways == 2
    assert config.names.service("worker") == "acme-worker"


def test_no_context_is_the_default_deployment_built_from_the_repository() -> None:
    config = config_from_context({}.get)
    assert config.settings == Settings()
    assert (config.image_uri, config.nat_gateways) == (None, 1)


def test_container_variables_give_back_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        prefix="acme-y",
        symbols=["BTCUSDT", "SOLUSDT"],
        auto_fill_gaps=False,
        anomaly_rules={"price_move_pct": "3", "stale_minutes": 10},
        spread_notionals={"BTCUSDT": Decimal("100000")},
        emulator_port=6000,  # local only: not passed on
    )
    env = container_environment(settings)
    assert "CANDLEFLOW_EMULATOR_PORT" not in env
    assert env["CANDLEFLOW_SYMBOLS"] == "BTCUSDT,SOLUSDT"
    assert env["CANDLEFLOW_AUTO_FILL_GAPS"] == "false"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = Settings()
    for field in settings.model_fields_set - {"emulator_port"}:
        assert getattr(rebuilt, field) == getattr(settings, field), field


def test_a_secret_setting_is_refused_as_a_container_variable() -> None:
    settings = Settings(binance_api_key=SecretStr("k"))
    with pytest.raises(ValueError, match="Secrets Manager"):
        container_environment(settings)


def test_the_work_pool_is_the_one_prefect_yaml_defines() -> None:
    defined = yaml.safe_load(PREFECT_YAML.read_text())["definitions"]["work_pools"]
    assert work_pool_name(PREFECT_YAML.read_text()) in {p["name"] for p in defined.values()}


def test_deployments_on_two_pools_cannot_share_one_worker_service() -> None:
    two = """
deployments:
  - {name: a, entrypoint: flows/a.py:a, work_pool: {name: one}}
  - {name: b, entrypoint: flows/b.py:b, work_pool: {name: two}}
"""
    with pytest.raises(ValueError, match="one work pool"):
        work_pool_name(two)
