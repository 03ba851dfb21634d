"""The API's public edge: HTTPS only, behind a WAF web ACL with the seed's rate rule."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack

from infra.cdk.config import DeployConfig
from infra.cdk.web import MANAGED_RULE_GROUPS, _web_acl
from tasks.settings import Settings
from tests.infra.conftest import Synth


def test_https_listener_serves_the_certificate_parameter_with_tls_1_2_or_newer(
    synth: Synth,
) -> None:
    _, https = synth.one("AWS::ElasticLoadBalancingV2::Listener", Port=443)
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    (action,) = https["DefaultActions"]
    _, group = synth.one(
        "AWS::ElasticLoadBalancingV2::TargetGroup", Port=synth.config.settings.api_port
    )
    assert action["Type"] == "forward"
    assert group["HealthCheckPath"] == "/livez"


def test_http_only_redirects_to_https(synth: Synth) -> None:
    _, http = synth.one("AWS::ElasticLoadBalancingV2::Listener", Port=80)
    assert http["DefaultActions"] == [
        {
            "Type": "redirect",
            "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"},
        }
    ]
    assert len(synth.resources("AWS::ElasticLoadBalancingV2::Listener")) == 2


def test_load_balancer_drops_invalid_headers_logs_and_resists_deletion(synth: Synth) -> None:
    (alb,) = synth.props("AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    assert alb["Scheme"] == "internet-facing"


def test_waf_blocks_an_address_past_2000_requests_in_5_minutes(synth: Synth) -> None:
    _, acl = synth.one("AWS::WAFv2::WebACL", Name=synth.config.names.web_acl)
    rules = {r["Name"]: r for r in acl["Rules"]}
    rate = rules["rate-limit-per-ip"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "Limit": 2000,
        "EvaluationWindowSec": 300,
        "AggregateKeyType": "IP",
    }
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}


def test_waf_runs_the_aws_core_and_known_bad_inputs_rule_groups(synth: Synth) -> None:
    _, acl = synth.one("AWS::WAFv2::WebACL", Name=synth.config.names.web_acl)
    managed = [
        r["Statement"]["ManagedRuleGroupStatement"]
        for r in acl["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    ]
    assert managed == [
        {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"},
        {"VendorName": "AWS", "Name": "AWSManagedRulesKnownBadInputsRuleSet"},
    ]
    assert list(MANAGED_RULE_GROUPS) == [m["Name"] for m in managed]
    priorities = [r["Priority"] for r in acl["Rules"]]
    assert len(set(priorities)) == len(priorities)
    for visibility in [acl["VisibilityConfig"], *(r["VisibilityConfig"] for r in acl["Rules"])]:
        assert visibility["CloudWatchMetricsEnabled"] is True
        assert visibility["SampledRequestsEnabled"] is True


def test_waf_guards_the_load_balancer_and_logs_its_requests(synth: Synth) -> None:
    (alb_id,) = synth.resources("AWS::ElasticLoadBalancingV2::LoadBalancer")
    acl_id, _ = synth.one("AWS::WAFv2::WebACL", Name=synth.config.names.web_acl)
    (association,) = synth.props("AWS::WAFv2::WebACLAssociation")
    assert association == {
        "ResourceArn": {"Ref": alb_id},
        "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]},
    }
    (logging,) = synth.props("AWS::WAFv2::LoggingConfiguration")
    assert logging["ResourceArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    (destination,) = logging["LogDestinationConfigs"]
    assert destination["Fn::Join"][1][-1].endswith(f":log-group:{synth.config.names.waf_log_group}")
    synth.one("AWS::Logs::LogGroup", LogGroupName=synth.config.names.waf_log_group)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("api_rate_window_s", 30, "WAF counts requests over"), ("api_rate_limit", 5, "at least 10")],
)
def test_a_rate_limit_waf_cannot_enforce_is_refused(field: str, value: int, message: str) -> None:
    config = DeployConfig(Settings(**{field: value}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        _web_acl(Stack(App(), "Edge"), config)
