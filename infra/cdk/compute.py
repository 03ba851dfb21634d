"""Where the code runs: a VPC, an ECS cluster on Fargate, and one service per component.

One image (the repository's Dockerfile) runs as every component, with a different command:

- producer: ``candleflow produce --source binance`` (one task: Binance trades -> the trades queue);
- sampler: ``candleflow sample`` (one task: order-book spreads -> the samples queue);
- worker: ``prefect worker start --pool <pool of prefect.yaml> --type process``: it polls Prefect for
  the runs of ``prefect.yaml``'s deployments and runs each as a process in its task (count: the
  ``WorkerCount`` parameter);
- api: ``candleflow api`` behind the load balancer (``web.py``).

Tasks run in private subnets and reach AWS through a NAT gateway, or S3 and DynamoDB through free
gateway endpoints. Root filesystems are read-only; ``/tmp`` is a task volume (HOME and PREFECT_HOME
live there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.cdk.config import REPO_ROOT, DeployConfig, TaskSize, container_environment
from infra.cdk.iam import TaskRoles

SCRATCH = "/tmp"  # the only writable path of a container
SCRATCH_ENV = {"HOME": SCRATCH, "PREFECT_HOME": f"{SCRATCH}/prefect"}


@dataclass(frozen=True, slots=True)
class Services:
    vpc: ec2.Vpc
    cluster: ecs.Cluster
    producer: ecs.FargateService
    sampler: ecs.FargateService
    worker: ecs.FargateService
    api: ecs.FargateService
    api_port: int


@dataclass(frozen=True, slots=True)
class Runtime:
    """What every service shares."""

    config: DeployConfig
    cluster: ecs.Cluster
    image: ecs.ContainerImage
    key: kms.IKey


def services(
    scope: Construct,
    config: DeployConfig,
    roles: TaskRoles,
    key: kms.IKey,
    prefect_api_url: str,
    prefect_api_key: secretsmanager.ISecret,
    worker_count: float,
) -> Services:
    vpc = _vpc(scope, config, key)
    cluster = ecs.Cluster(
        scope,
        "Cluster",
        cluster_name=config.names.cluster,
        vpc=vpc,
        container_insights_v2=ecs.ContainerInsights.ENABLED,
    )
    run = Runtime(config, cluster, _image(scope, config), key)
    sizing, settings = config.sizing, config.settings
    producer = _service(
        scope, run, "producer", roles.producer, sizing.producer,
        ["candleflow", "produce", "--source", "binance"],
    )  # fmt: skip
    sampler = _service(
        scope, run, "sampler", roles.producer, sizing.sampler, ["candleflow", "sample"]
    )
    worker = _service(
        scope, run, "worker", roles.worker, sizing.worker,
        ["prefect", "worker", "start", "--pool", config.work_pool, "--type", "process"],
        # Heartbeats every 30 s: deployments/automations.py crashes a run silent for 90 s.
        env={"PREFECT_API_URL": prefect_api_url, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"},
        secrets={"PREFECT_API_KEY": ecs.Secret.from_secrets_manager(prefect_api_key)},
        count=worker_count,
    )  # fmt: skip
    api = _service(
        scope, run, "api", roles.api, sizing.api, ["candleflow", "api"],
        env={"CANDLEFLOW_API_TRUST_FORWARDED_FOR": "true"},  # the image binds 0.0.0.0
        port=settings.api_port,
    )  # fmt: skip
    return Services(vpc, cluster, producer, sampler, worker, api, settings.api_port)


def _vpc(scope: Construct, config: DeployConfig, key: kms.IKey) -> ec2.Vpc:
    flow_logs = logs.LogGroup(
        scope,
        "VpcFlowLogs",
        log_group_name=config.names.log_group("vpc-flow-logs"),
        retention=config.sizing.log_retention,
        encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )
    return ec2.Vpc(
        scope,
        "Vpc",
        max_azs=2,
        nat_gateways=config.nat_gateways,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
            ec2.SubnetConfiguration(
                name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
            ),
        ],
        gateway_endpoints={
            "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
            "DynamoDB": ec2.GatewayVpcEndpointOptions(
                service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
            ),
        },
        flow_logs={
            "all": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                traffic_type=ec2.FlowLogTrafficType.REJECT,
            )
        },
    )


def _image(scope: Construct, config: DeployConfig) -> ecs.ContainerImage:
    if config.image_uri:
        return ecs.ContainerImage.from_registry(config.image_uri)
    asset = ecr_assets.DockerImageAsset(
        scope, "Image", directory=str(REPO_ROOT), platform=ecr_assets.Platform.LINUX_AMD64
    )
    return ecs.ContainerImage.from_docker_image_asset(asset)


def _service(
    scope: Construct,
    run: Runtime,
    component: str,
    role: iam.IRole,
    size: TaskSize,
    command: list[str],
    *,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, ecs.Secret] | None = None,
    port: int | None = None,
    count: float | None = None,
) -> ecs.FargateService:
    construct_id = component.capitalize()
    names, sizing = run.config.names, run.config.sizing
    task = ecs.FargateTaskDefinition(
        scope,
        f"{construct_id}Task",
        family=names.service(component),
        cpu=size.cpu,
        memory_limit_mib=size.memory_mib,
        task_role=role,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
        volumes=[ecs.Volume(name="scratch")],
    )
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        log_group_name=names.log_group(component),
        retention=sizing.log_retention,
        encryption_key=run.key,
        removal_policy=RemovalPolicy.DESTROY,
    )
    container = task.add_container(
        component,
        image=run.image,
        command=command,
        environment={**container_environment(run.config.settings), **SCRATCH_ENV, **(env or {})},
        secrets=dict(secrets or {}),
        logging=ecs.LogDrivers.aws_logs(stream_prefix=component, log_group=log_group),
        readonly_root_filesystem=True,
        stop_timeout=Duration.seconds(30),  # SIGTERM: the producer sends what it buffered
        port_mappings=[ecs.PortMapping(container_port=port)] if port is not None else None,
    )
    container.add_mount_points(
        ecs.MountPoint(container_path=SCRATCH, source_volume="scratch", read_only=False)
    )
    return ecs.FargateService(
        scope,
        construct_id,
        cluster=run.cluster,
        service_name=names.service(component),
        task_definition=task,
        desired_count=count if count is not None else size.count,
        min_healthy_percent=100,
        max_healthy_percent=200,
        circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
        assign_public_ip=False,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        propagate_tags=ecs.PropagatedTagSource.SERVICE,
        enable_execute_command=False,
    )
