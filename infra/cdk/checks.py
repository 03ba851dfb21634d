"""Suppressions of the template checks, each with its reason, in the resource's metadata.

Checkov reads ``Metadata.checkov.skip`` and cfn-lint ``Metadata.cfn-lint.config.ignore_checks`` of a
resource. Every suppression is listed with its reason in docs/aws.md ("Suppressed checks"), and a
test holds the template and that list together.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct


def skip_checkov(construct: IConstruct, check_id: str, reason: str) -> None:
    """Suppress one checkov check on ``construct`` (an L1 resource or an L2 with a default child)."""
    resource = _resource(construct)
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"] = [*metadata["skip"], {"id": check_id, "comment": reason}]
    resource.add_metadata("checkov", metadata)


def ignore_cfn_lint(construct: IConstruct, rule: str, reason: str) -> None:
    """Ignore one cfn-lint rule on ``construct``; cfn-lint has no place for the reason, the
    ``candleflow:cfn-lint-reasons`` metadata next to it holds it."""
    resource = _resource(construct)
    config = resource.get_metadata("cfn-lint") or {"config": {"ignore_checks": []}}
    config["config"]["ignore_checks"] = [*config["config"]["ignore_checks"], rule]
    resource.add_metadata("cfn-lint", config)
    reasons = resource.get_metadata("candleflow:cfn-lint-reasons") or {}
    resource.add_metadata("candleflow:cfn-lint-reasons", {**reasons, rule: reason})


def _resource(construct: IConstruct) -> CfnResource:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    return resource
