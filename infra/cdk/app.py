"""The CDK app: ``cdk synth`` / ``cdk deploy`` run ``python -m infra.cdk.app`` (see cdk.json).

Settings come from CDK context (any ``tasks.settings.Settings`` field by name, e.g.
``-c prefix=acme -c alert_emails=ops@acme.io``) over the ``CANDLEFLOW_*`` environment. The region is
``-c region=...`` or the CDK CLI's (``CDK_DEFAULT_REGION``, from the AWS profile); it must be known at
synth time because the load balancer's access logs are delivered by that region's ELB account. The
account is left to CloudFormation, so the availability zones resolve at deploy time.
"""

from __future__ import annotations

import os

from aws_cdk import App, Environment

from infra.cdk.config import cdk_context, config_from_context
from infra.cdk.stack import CandleflowStack

DESCRIPTION = "candleflow: Binance trades -> SQS -> Prefect -> exact candles (DynamoDB) + S3 lake"


def main() -> None:
    app = App(context=cdk_context())  # the CLI's context, when there is one, wins
    config = config_from_context(app.node.try_get_context)
    region = app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION")
    if not region:
        raise SystemExit(
            "candleflow's stack needs a region: set AWS_REGION or the profile's region, or pass "
            "-c region=eu-west-1"
        )
    CandleflowStack(app, config, env=Environment(region=str(region)), description=DESCRIPTION)
    app.synth()


if __name__ == "__main__":
    main()
