"""The Glue catalog over the lake (database, tables, crawler) and Athena's workgroup.

The tables are ``tasks.core.catalog.lake_tables(spec)`` through ``table_input(...)``, the very
``TableInput`` the workers and the emulator use, converted to CloudFormation properties key by key: a
key this module does not know fails the synth instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.cdk.checks import skip_checkov
from infra.cdk.config import Sizing
from infra.spec import ResourceSpec
from tasks.core.catalog import lake_tables, table_input

if TYPE_CHECKING:
    from mypy_boto3_glue.type_defs import TableInputTypeDef

# What the crawler may change: partitions only (the same policy tasks/aws/glue.ensure_crawler sets).
CRAWLER_SCHEMA_CHANGE = {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
CRAWLER_CONFIGURATION = (
    '{"Version":1.0,"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"InheritFromTable"}}}'
)


@dataclass(frozen=True, slots=True)
class Catalog:
    database: glue.CfnDatabase
    tables: tuple[glue.CfnTable, ...]
    crawler: glue.CfnCrawler
    crawler_role: iam.Role
    workgroup: athena.CfnWorkGroup


def catalog(scope: Construct, spec: ResourceSpec, sizing: Sizing, lake: s3.IBucket) -> Catalog:
    account = Stack.of(scope).account
    database = glue.CfnDatabase(
        scope,
        "GlueDatabase",
        catalog_id=account,
        database_input=glue.CfnDatabase.DatabaseInputProperty(
            name=spec.glue_database,
            description="candleflow lake: trades, candles and spread samples",
        ),
    )
    tables = []
    for lake_table in lake_tables(spec):
        table = glue.CfnTable(
            scope,
            f"GlueTable-{lake_table.name}",
            catalog_id=account,
            database_name=spec.glue_database,
            table_input=cfn_table_input(table_input(lake_table, spec.bucket.name)),
        )
        table.add_resource_dependency(database)
        tables.append(table)
    role = _crawler_role(scope, spec, lake)
    crawler = glue.CfnCrawler(
        scope,
        "Crawler",
        name=spec.catalog.crawler,
        role=role.role_arn,
        description="Second net for the lake's partitions (the workers register them as they write)",
        targets=glue.CfnCrawler.TargetsProperty(
            catalog_targets=[
                glue.CfnCrawler.CatalogTargetProperty(
                    database_name=spec.glue_database, tables=[t.name for t in lake_tables(spec)]
                )
            ]
        ),
        schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
            update_behavior=CRAWLER_SCHEMA_CHANGE["UpdateBehavior"],
            delete_behavior=CRAWLER_SCHEMA_CHANGE["DeleteBehavior"],
        ),
        configuration=CRAWLER_CONFIGURATION,
        schedule=glue.CfnCrawler.ScheduleProperty(schedule_expression=sizing.crawler_schedule),
    )
    for table in tables:
        crawler.add_resource_dependency(table)
    skip_checkov(
        crawler,
        "CKV_AWS_195",
        "The crawler writes only partition metadata of public market data; a Glue security "
        "configuration would KMS-encrypt its CloudWatch logs, which hold table names only.",
    )
    return Catalog(database, tuple(tables), crawler, role, _workgroup(scope, spec, sizing))


def cfn_table_input(source: TableInputTypeDef) -> glue.CfnTable.TableInputProperty:
    """A Glue API ``TableInput`` as CloudFormation's ``TableInput`` (same fields, other spelling)."""
    given: Mapping[str, Any] = source
    _only(
        given,
        {"Name", "Description", "TableType", "Parameters", "PartitionKeys", "StorageDescriptor"},
    )
    sd: Mapping[str, Any] = given["StorageDescriptor"]
    _only(
        sd,
        {
            "Columns",
            "Location",
            "InputFormat",
            "OutputFormat",
            "Compressed",
            "SerdeInfo",
            "StoredAsSubDirectories",
        },
    )
    serde: Mapping[str, Any] = sd["SerdeInfo"]
    _only(serde, {"SerializationLibrary", "Parameters"})
    return glue.CfnTable.TableInputProperty(
        name=given["Name"],
        description=given.get("Description"),
        table_type=given.get("TableType"),
        parameters=dict(given.get("Parameters", {})),
        partition_keys=_columns(given.get("PartitionKeys", [])),
        storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
            columns=_columns(sd["Columns"]),
            location=sd["Location"],
            input_format=sd["InputFormat"],
            output_format=sd["OutputFormat"],
            compressed=sd["Compressed"],
            serde_info=glue.CfnTable.SerdeInfoProperty(
                serialization_library=serde["SerializationLibrary"],
                parameters=dict(serde.get("Parameters", {})),
            ),
            stored_as_sub_directories=sd["StoredAsSubDirectories"],
        ),
    )


def _columns(columns: Sequence[Mapping[str, Any]]) -> list[glue.CfnTable.ColumnProperty]:
    for column in columns:
        _only(column, {"Name", "Type"})
    return [glue.CfnTable.ColumnProperty(name=c["Name"], type=c["Type"]) for c in columns]


def _only(fields: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(fields) - known
    if unknown:
        raise ValueError(
            f"infra/cdk/catalog.py does not map Glue TableInput fields {sorted(unknown)} to "
            "CloudFormation yet: add them to cfn_table_input"
        )


def _crawler_role(scope: Construct, spec: ResourceSpec, lake: s3.IBucket) -> iam.Role:
    """Reads the tables' objects and writes their partitions, nothing else."""
    stack = Stack.of(scope)
    prefixes = [t.prefix for t in lake_tables(spec)]
    role = iam.Role(
        scope,
        "CrawlerRole",
        assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
        description="The Glue crawler over the lake's tables",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadTheTablesObjects",
            actions=["s3:GetObject"],
            resources=[lake.arn_for_objects(f"{p}/*") for p in prefixes],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ListTheTablesPrefixes",
            actions=["s3:ListBucket"],
            resources=[lake.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}/*" for p in prefixes] + prefixes}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="UpdateTheTablesPartitions",
            actions=[
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:UpdateTable",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchGetPartition",
                "glue:CreatePartition",
                "glue:BatchCreatePartition",
                "glue:UpdatePartition",
                "glue:BatchUpdatePartition",
            ],
            resources=glue_arns(stack, spec.glue_database),
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteCrawlerLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[
                stack.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name="/aws-glue/crawlers:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
        )
    )
    return role


def glue_arns(stack: Stack, database: str) -> list[str]:
    """The catalog, the database and its tables: what Glue checks for a table or partition call."""
    return [
        stack.format_arn(service="glue", resource="catalog"),
        stack.format_arn(service="glue", resource="database", resource_name=database),
        stack.format_arn(service="glue", resource="table", resource_name=f"{database}/*"),
    ]


def _workgroup(scope: Construct, spec: ResourceSpec, sizing: Sizing) -> athena.CfnWorkGroup:
    """Results under the lake's results prefix, SSE-S3, enforced whatever a client asks for."""
    return athena.CfnWorkGroup(
        scope,
        "Workgroup",
        name=spec.catalog.athena_workgroup,
        description="candleflow: SQL over the lake",
        state="ENABLED",
        work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
            enforce_work_group_configuration=True,
            publish_cloud_watch_metrics_enabled=True,
            bytes_scanned_cutoff_per_query=sizing.athena_bytes_scanned_cutoff,
            result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                output_location=f"s3://{spec.bucket.name}/{spec.bucket.athena_results_prefix}/",
                encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                    encryption_option="SSE_S3"
                ),
            ),
        ),
    )
