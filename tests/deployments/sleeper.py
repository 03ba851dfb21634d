"""A flow run that only sleeps: the process a test kills (tests/deployments/test_automations.py).

``python -m tests.deployments.sleeper TAG`` prints ``running <flow run id>`` from inside the run.
"""

from __future__ import annotations

import sys
import time

from prefect import flow, tags
from prefect.runtime import flow_run


@flow(name="candleflow-test-sleeper", log_prints=False)
def sleeper() -> None:
    print(f"running {flow_run.id}", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    with tags(sys.argv[1]):
        sleeper()
