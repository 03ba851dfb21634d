"""The services: one image, one command per component, private, read-only, sized by parameters."""

from __future__ import annotations

from typing import Any

import pytest

from infra.cdk.config import PREFECT_YAML, work_pool_name
from tests.infra.conftest import IMAGE, Synth


def _container(synth: Synth, component: str) -> dict[str, Any]:
    _, task = synth.one("AWS::ECS::TaskDefinition", Family=synth.config.names.service(component))
    (container,) = task["ContainerDefinitions"]
    return dict(container)


def _service(synth: Synth, component: str) -> dict[str, Any]:
    return synth.one("AWS::ECS::Service", ServiceName=synth.config.names.service(component))[1]


@pytest.mark.parametrize(
    ("component", "command"),
    [
        ("producer", ["candleflow", "produce", "--source", "binance"]),
        ("sampler", ["candleflow", "sample"]),
        ("api", ["candleflow", "api"]),
    ],
)
def test_each_component_runs_its_command_from_the_one_image(
    synth: Synth, component: str, command: list[str]
) -> None:
    container = _container(synth, component)
    assert container["Command"] == command
    assert container["Image"] == IMAGE


def test_worker_polls_the_work_pool_of_prefect_yaml(synth: Synth) -> None:
    pool = work_pool_name(PREFECT_YAML.read_text())
    container = _container(synth, "worker")
    assert container["Command"] == [
        "prefect",
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "process",
    ]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["PREFECT_API_URL"] == {"Ref": "PrefectApiUrl"}
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"  # what the automation expects
    secret_id, _ = synth.one(
        "AWS::SecretsManager::Secret", Name=synth.config.names.prefect_api_key_secret
    )
    assert container["Secrets"] == [{"Name": "PREFECT_API_KEY", "ValueFrom": {"Ref": secret_id}}]
    assert _service(synth, "worker")["DesiredCount"] == {"Ref": "WorkerCount"}


@pytest.mark.parametrize("component", ["producer", "sampler"])
def test_producers_run_one_task_each(synth: Synth, component: str) -> None:
    assert _service(synth, component)["DesiredCount"] == 1


@pytest.mark.parametrize("component", ["producer", "sampler", "worker", "api"])
def test_containers_are_read_only_but_for_a_scratch_volume_and_log(
    synth: Synth, component: str
) -> None:
    container = _container(synth, component)
    assert container["ReadonlyRootFilesystem"] is True
    assert container["MountPoints"] == [
        {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "scratch"}
    ]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["HOME"] == "/tmp"
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert not container.get("Privileged")


@pytest.mark.parametrize("component", ["producer", "sampler", "worker", "api"])
def test_services_run_in_private_subnets_without_public_addresses(
    synth: Synth, component: str
) -> None:
    service = _service(synth, component)
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert all("private" in s["Ref"] for s in network["Subnets"])
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }


def test_api_listens_where_the_load_balancer_sends_and_trusts_its_forwarded_for(
    synth: Synth,
) -> None:
    port = synth.config.settings.api_port
    container = _container(synth, "api")
    assert container["PortMappings"] == [{"ContainerPort": port, "Protocol": "tcp"}]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["CANDLEFLOW_API_TRUST_FORWARDED_FOR"] == "true"
    (balanced,) = _service(synth, "api")["LoadBalancers"]
    assert (balanced["ContainerName"], balanced["ContainerPort"]) == ("api", port)


def test_s3_and_dynamodb_are_reached_through_gateway_endpoints(synth: Synth) -> None:
    endpoints = synth.props("AWS::EC2::VPCEndpoint")
    services = sorted(e["ServiceName"]["Fn::Join"][1][-1] for e in endpoints)
    assert services == [".dynamodb", ".s3"]
    assert all(e["VpcEndpointType"] == "Gateway" for e in endpoints)
    assert len(synth.resources("AWS::EC2::NatGateway")) == synth.config.nat_gateways


def test_cluster_has_container_insights(synth: Synth) -> None:
    _, cluster = synth.one("AWS::ECS::Cluster", ClusterName=synth.config.names.cluster)
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]
