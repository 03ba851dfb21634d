"""``candleflow aws`` (the embedded AWS emulator) and ``candleflow provision``."""

from __future__ import annotations

import argparse
import logging

from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws.clients import AwsClients
from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("aws", help="run the embedded AWS emulator (moto server) in the foreground")
    p.add_argument("--host", help="address to bind (default CANDLEFLOW_EMULATOR_HOST)")
    p.add_argument("--port", type=int, help="port (default CANDLEFLOW_EMULATOR_PORT)")
    p.add_argument(
        "--log-requests", action="store_true", help="log every request, not only 5xx ones"
    )
    p.set_defaults(func=run_emulator)
    p = sub.add_parser("provision", help="create or verify every AWS resource (idempotent)")
    p.set_defaults(func=run_provision)


def run_emulator(args: argparse.Namespace, settings: Settings) -> int:
    from infra.emulator import serve

    host = args.host or settings.emulator_host
    port = args.port or settings.emulator_port
    hint = f"  export AWS_ENDPOINT_URL=http://{host}:{port}  # then any candleflow command uses it"
    return serve(host, port, every_request=args.log_requests, hints=(hint,))


def run_provision(args: argparse.Namespace, settings: Settings) -> int:
    clients = AwsClients()
    endpoint = clients.sqs.meta.endpoint_url
    logging.getLogger(__name__).info("provisioning at %s (region %s)", endpoint, clients.region)
    done = provision(clients, resource_spec(settings))
    print(f"queue        {done.queue_url}")
    print(f"dead letters {done.dlq_url}")
    print(f"lake bucket  s3://{done.bucket}")
    print(f"candles      dynamodb table {done.table}")
    print(f"alerts       {done.topic_arn}")
    print(f"catalog      glue database {done.glue_database}")
    return 0
