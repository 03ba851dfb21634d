"""The public edge of the API: an HTTPS load balancer with a WAF web ACL in front of it.

HTTP only redirects to HTTPS (TLS 1.2+, the certificate is the ``CertificateArn`` parameter). The web
ACL blocks a client address past the API's rate limit (``api_rate_limit`` requests per
``api_rate_window_s``: 2,000 per 5 minutes, the seed's rule, also enforced in the app) and runs AWS's
core rule set (OWASP top 10) and known-bad-inputs rules; its requests are logged to CloudWatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.cdk.checks import ignore_cfn_lint, skip_checkov
from infra.cdk.compute import Services
from infra.cdk.config import DeployConfig

# Rate-based rules count over one of these windows only (WAF's EvaluationWindowSec).
WAF_WINDOWS_S = (60, 120, 300, 600)
WAF_MIN_RATE_LIMIT = 10
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")


@dataclass(frozen=True, slots=True)
class Edge:
    load_balancer: elb.ApplicationLoadBalancer
    https: elb.ApplicationListener
    web_acl: wafv2.CfnWebACL


def edge(
    scope: Construct,
    config: DeployConfig,
    services: Services,
    certificate_arn: str,
    access_logs: s3.IBucket,
    key: kms.IKey,
) -> Edge:
    alb = elb.ApplicationLoadBalancer(
        scope,
        "LoadBalancer",
        vpc=services.vpc,
        internet_facing=True,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        drop_invalid_header_fields=True,
        deletion_protection=True,
    )
    alb.log_access_logs(access_logs, prefix="alb")
    https = alb.add_listener(
        "Https",
        port=443,
        protocol=elb.ApplicationProtocol.HTTPS,
        certificates=[elb.ListenerCertificate.from_arn(certificate_arn)],
        ssl_policy=elb.SslPolicy.RECOMMENDED_TLS,
        open=True,
    )
    https.add_targets(
        "Api",
        port=services.api_port,
        protocol=elb.ApplicationProtocol.HTTP,
        targets=[services.api],
        deregistration_delay=Duration.seconds(30),
        # The OpenAPI page needs no store: a slow DynamoDB does not take the API out of service.
        health_check=elb.HealthCheck(path="/livez", healthy_http_codes="200"),
    )
    alb.add_redirect(source_port=80, target_port=443)
    ignore_cfn_lint(
        services.api,
        "W3005",
        "CDK makes the service depend on its target group, which it already refers to: harmless.",
    )
    skip_checkov(
        alb.connections.security_groups[0],
        "CKV_AWS_260",
        "Port 80 is open to the internet only to answer with a redirect to HTTPS (443).",
    )
    acl = _web_acl(scope, config)
    wafv2.CfnWebACLAssociation(
        scope, "WebAclAssociation", resource_arn=alb.load_balancer_arn, web_acl_arn=acl.attr_arn
    )
    _waf_logging(scope, config, acl, key)
    return Edge(alb, https, acl)


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _web_acl(scope: Construct, config: DeployConfig) -> wafv2.CfnWebACL:
    settings, names = config.settings, config.names
    if settings.api_rate_window_s not in WAF_WINDOWS_S:
        raise ValueError(
            f"CANDLEFLOW_API_RATE_WINDOW_S={settings.api_rate_window_s}: WAF counts requests over "
            f"{', '.join(map(str, WAF_WINDOWS_S))} seconds only"
        )
    if settings.api_rate_limit < WAF_MIN_RATE_LIMIT:
        raise ValueError(
            f"CANDLEFLOW_API_RATE_LIMIT={settings.api_rate_limit}: WAF's rate limit is at least "
            f"{WAF_MIN_RATE_LIMIT}"
        )
    rate = wafv2.CfnWebACL.RuleProperty(
        name="rate-limit-per-ip",
        priority=0,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=settings.api_rate_limit,
                evaluation_window_sec=settings.api_rate_window_s,
                aggregate_key_type="IP",
            )
        ),
        visibility_config=_visibility(f"{names.web_acl}-rate-limit-per-ip"),
    )
    managed = [
        wafv2.CfnWebACL.RuleProperty(
            name=group,
            priority=priority,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS", name=group
                )
            ),
            visibility_config=_visibility(f"{names.web_acl}-{group}"),
        )
        for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1)
    ]
    return wafv2.CfnWebACL(
        scope,
        "WebAcl",
        name=names.web_acl,
        description="candleflow API: per-IP rate limit, AWS core and known-bad-inputs rules",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(names.web_acl),
        rules=[rate, *managed],
    )


def _waf_logging(
    scope: Construct, config: DeployConfig, acl: wafv2.CfnWebACL, key: kms.IKey
) -> None:
    name = config.names.waf_log_group
    group = logs.LogGroup(
        scope,
        "WafLogs",
        log_group_name=name,
        retention=config.sizing.log_retention,
        encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )
    # WAF takes the group's ARN without the ":*" that LogGroup.log_group_arn ends with.
    arn = Stack.of(scope).format_arn(
        service="logs",
        resource="log-group",
        resource_name=name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    logging = wafv2.CfnLoggingConfiguration(
        scope, "WafLogging", log_destination_configs=[arn], resource_arn=acl.attr_arn
    )
    logging.node.add_dependency(group)
