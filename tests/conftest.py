"""Session-wide real services: a moto server over HTTP with every resource provisioned.

Tests talk to it with real boto3 clients through ``AWS_ENDPOINT_URL``, exactly as the product does.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings

from infra.provision import Provisioned, provision
from infra.spec import ResourceSpec, resource_spec
from tasks.aws.clients import AwsClients
from tasks.settings import Settings

# The suite runs on two cores beside its servers and another xdist worker, so a draw or an example
# can be slow for reasons that have nothing to do with the code under test (seen: 4.7 s for three
# inputs of a plain list strategy). Speed is measured by the benchmark, never by a test.
settings.register_profile("candleflow", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("candleflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AwsEnv:
    endpoint: str
    settings: Settings
    spec: ResourceSpec
    resources: Provisioned
    clients: AwsClients


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from infra.emulator import emulator

    # Otherwise the emulator logs one line per request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = emulator("127.0.0.1", port)  # moto, with DynamoDB's conditional writes atomic
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)

_counter = iter(range(1, 1_000_000))


@pytest.fixture
def aws(moto_endpoint: str) -> AwsEnv:
    """A fresh, fully provisioned set of resources (own name prefix) on the shared moto server."""
    settings = Settings(prefix=f"t{next(_counter)}-{os.getpid()}")
    spec = resource_spec(settings)
    clients = AwsClients()
    return AwsEnv(moto_endpoint, settings, spec, provision(clients, spec), clients)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (its first start runs database migrations)."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
