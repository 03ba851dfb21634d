"""What the tasks of one flow run share: settings, resource names and AWS clients, built once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prefect import task
from prefect.cache_policies import NO_CACHE

from infra.spec import ResourceSpec, resource_spec
from tasks.aws.clients import AwsClients
from tasks.settings import Settings


class Store(Protocol):
    """Any flow context with settings, the resource spec and clients (the ingest's is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def spec(self) -> ResourceSpec: ...

    @property
    def clients(self) -> AwsClients: ...


@dataclass(frozen=True)
class StoreContext:
    settings: Settings
    spec: ResourceSpec
    clients: AwsClients

    @classmethod
    def connect(cls, settings: Settings) -> StoreContext:
        return cls(settings, resource_spec(settings), AwsClients())


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def store_context(settings: Settings) -> StoreContext:
    """The run's context (a task, so a failure to build clients shows and retries in the UI)."""
    return StoreContext.connect(settings)
