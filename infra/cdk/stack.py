"""The candleflow stack: every AWS resource of one deployment, named by ``resource_spec(settings)``.

Composed from one module per concern: ``data`` (queues, lake, table), ``catalog`` (Glue, Athena),
``alerts`` (SNS, alarms), ``iam`` (task roles), ``compute`` (VPC, ECS services), ``web`` (load
balancer, WAF). Deploy-time values that are not names are CloudFormation parameters.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Stack, Tags
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.cdk.alerts import alerts
from infra.cdk.catalog import catalog
from infra.cdk.compute import services
from infra.cdk.config import DeployConfig
from infra.cdk.data import data_stores
from infra.cdk.encryption import ops_key
from infra.cdk.iam import task_roles
from infra.cdk.web import edge
from infra.spec import resource_spec

CERTIFICATE_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$"


class CandleflowStack(Stack):
    def __init__(self, scope: Construct, config: DeployConfig, **kwargs: Any) -> None:
        super().__init__(scope, config.names.stack, **kwargs)
        spec = resource_spec(config.settings)
        self.config, self.spec = config, spec
        Tags.of(self).add("candleflow:prefix", config.settings.prefix)

        certificate_arn = CfnParameter(
            self,
            "CertificateArn",
            description="ACM certificate (same region) of the API's HTTPS listener",
            allowed_pattern=CERTIFICATE_ARN_PATTERN,
        )
        prefect_api_url = CfnParameter(
            self,
            "PrefectApiUrl",
            description="PREFECT_API_URL of the workers, e.g. "
            "https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>",
            allowed_pattern=r"^https?://\S+$",
        )
        worker_count = CfnParameter(
            self,
            "WorkerCount",
            type="Number",
            default=1,
            min_value=0,
            max_value=20,
            description="Prefect worker tasks (each runs flow runs as processes)",
        )

        key = ops_key(self, config.names)
        stores = data_stores(self, spec, config.sizing)
        self.catalog = catalog(self, spec, config.sizing, stores.lake)
        self.alerts = alerts(self, spec, config.sizing, key, stores)
        prefect_api_key = secretsmanager.Secret(
            self,
            "PrefectApiKey",
            secret_name=config.names.prefect_api_key_secret,
            description="PREFECT_API_KEY of the workers: put the real key here after the first deploy",
            encryption_key=key,
        )
        self.roles = task_roles(self, spec, stores, self.alerts.topic, key)
        self.services = services(
            self,
            config,
            self.roles,
            key,
            prefect_api_url.value_as_string,
            prefect_api_key,
            worker_count.value_as_number,
        )
        self.edge = edge(
            self, config, self.services, certificate_arn.value_as_string, stores.access_logs, key
        )
        self.stores = stores

        CfnOutput(
            self, "ApiUrl", value=f"https://{self.edge.load_balancer.load_balancer_dns_name}/"
        )
        CfnOutput(self, "ClusterName", value=self.services.cluster.cluster_name)
        CfnOutput(self, "PrefectApiKeySecretArn", value=prefect_api_key.secret_arn)
        CfnOutput(self, "AlertsTopicArn", value=self.alerts.topic.topic_arn)
        CfnOutput(self, "LakeBucket", value=stores.lake.bucket_name)
