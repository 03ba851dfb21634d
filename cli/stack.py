"""``candleflow up`` / ``candleflow down``: the whole embedded stack on this machine.

``up`` starts, each as its own process group with a log under ``<state_dir>/logs``: the AWS emulator,
provisioning, a Prefect server with its UI, the deployments of prefect.yaml served on their
schedules, and the producer (live Binance, or a replay of the shipped captures when Binance is out of
reach). ``down`` stops exactly the processes ``up`` recorded, and nothing else.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws.clients import AwsClients
from tasks.errors import ConfigError
from tasks.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "data" / "binance-ws").glob("spot_*.gz"))
# What a person's shell needs to reach the embedded stack (written to <state_dir>/env).
EXPORTED = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "PREFECT_API_URL",
)
STOP_ORDER = (
    "producer",
    "sampler",
    "api",
    "deployments",
    "prefect",
    "aws",
)  # producer first: it flushes its buffer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up", help="start the embedded stack: AWS emulator, Prefect, ingest, producer"
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="replay the shipped captures even if Binance is reachable",
    )
    p.set_defaults(func=run_up)
    p = sub.add_parser("down", help="stop everything `candleflow up` started")
    p.set_defaults(func=run_down)


class Stack:
    """The state directory: pid files, logs, the env file, the Prefect database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = (ROOT / settings.state_dir).resolve()
        self.pids = self.root / "pids"
        self.logs = self.root / "logs"
        self.prefect_url = f"http://127.0.0.1:{settings.prefect_port}"

    def env(self) -> dict[str, str]:
        """Environment of every component: the emulator endpoint and the local Prefect server."""
        env = dict(os.environ)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.settings.emulator_url,
                # Dummy credentials: real ones must never be sent to the emulator.
                "AWS_ACCESS_KEY_ID": "candleflow",
                "AWS_SECRET_ACCESS_KEY": "candleflow",
                "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
                "PREFECT_HOME": str(self.root / "prefect"),
                "PREFECT_API_URL": f"{self.prefect_url}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                # The served deployments look for runs to start every 2 s, not 10 (a local server).
                "PREFECT_RUNNER_POLL_FREQUENCY": "2",
                # A heartbeat every 30 s (Prefect's minimum; 180 by default): a run whose process
                # was killed is marked Crashed after 90 s of silence (deployments/automations.py).
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
                "GX_ANALYTICS_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        return env

    def running(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        pid_text, _, marker = path.read_text().partition("\n")
        pid = int(pid_text)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if marker.strip() and marker.strip() in cmdline else None

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        import subprocess

        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        logfile = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.pids / f"{name}.pid").write_text(f"{process.pid}\n{' '.join(argv[1:3])}\n")
        log.info("started %s (pid %d, log %s)", name, process.pid, self.logs / f"{name}.log")
        return process.pid

    def stop(self, name: str, grace_s: float = 20.0) -> bool:
        pid_file = self.pids / f"{name}.pid"
        recorded = pid_file.exists()
        pid = self.running(name)
        pid_file.unlink(missing_ok=True)
        if pid is None:
            if recorded:
                print(f"{name} had already exited (see {_shown(self.logs / f'{name}.log')})")
            return recorded
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if _is_zombie(pid):
                break
            time.sleep(0.2)
        else:
            if Path(f"/proc/{pid}").exists():
                log.warning(
                    "%s (pid %d) ignored SIGTERM for %.0f s; killing it",
                    name,
                    pid,
                    grace_s,
                )
                os.killpg(pid, signal.SIGKILL)
        print(f"stopped {name} (pid {pid})")
        return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def wait_http(url: str, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.5)
    raise ConfigError(f"{what} did not answer at {url} within {timeout_s:.0f} s; see its log")


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    stack = Stack(settings)
    env = stack.env()
    os.environ.update({k: env[k] for k in (*EXPORTED, "PREFECT_HOME")})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    python = sys.executable
    cli = [python, "-m", "cli.main"]

    if stack.running("aws") is None:
        stack.start("aws", [*cli, "aws"], env)
    wait_http(settings.emulator_url, 60, "the AWS emulator")
    done = provision(AwsClients(), resource_spec(settings))
    print(
        f"AWS emulator:  {settings.emulator_url} (queue, DLQ, bucket, table, topic, Glue db ready)"
    )

    if stack.running("prefect") is None:
        prefect = str(Path(python).parent / "prefect")
        stack.start(
            "prefect",
            [
                prefect,
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.prefect_port),
            ],
            env,
        )
    print("Prefect:       starting the server (its first start migrates a database: ~30 s)...")
    wait_http(f"{stack.prefect_url}/api/health", 240, "the Prefect server")
    print(f"Prefect UI:    {stack.prefect_url}")

    if stack.running("deployments") is None:
        stack.start("deployments", [python, "-m", "deployments.serve"], env)
    if stack.running("api") is None:
        stack.start("api", [*cli, "api"], env)
    _run_ingest_now(stack)
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    wait_http(f"{api_url}/openapi.json", 60, "the API")
    print(f"Dashboard:     {api_url}/   (API docs: {api_url}/docs)")

    if stack.running("producer") is None:
        from producer.sources import binance_reachable

        if not args.replay and binance_reachable(settings.binance_ws_url, timeout=5):
            stack.start("producer", [*cli, "produce", "--source", "binance"], env)
            print(
                f"Producer:      live from {settings.binance_ws_url} ({','.join(settings.symbols)})"
            )
            if stack.running("sampler") is None:
                stack.start("sampler", [*cli, "sample"], env)
                markets = [*settings.spread_binance_symbols, *settings.spread_btcm_markets]
                print(
                    f"Spreads:       sampling {','.join(markets)} every {settings.spread_sample_interval_s:g} s"
                )
        else:
            if not args.replay:
                print(
                    f"Producer:      Binance is not reachable at {settings.binance_ws_url}; "
                    f"replaying the shipped real captures at {settings.replay_speed:g}x instead"
                )
            files = [str(p.relative_to(ROOT)) for p in CAPTURES]
            speed = ["--speed", f"{settings.replay_speed:g}"]
            stack.start("producer", [*cli, "produce", "--source", "replay", *speed, *files], env)
            if stack.running("sampler") is None:
                stack.start("sampler", [*cli, "sample", "--replay", *files, *speed], env)
                print(
                    "Spreads:       sampling the replayed Binance books every "
                    f"{settings.spread_sample_interval_s:g} s (BTCMarkets needs the network)"
                )

    env_file = stack.root / "env"
    env_file.write_text(
        "".join(f"export {k}={env[k]}\n" for k in EXPORTED)
        + f'export PATH="{Path(python).parent}:$PATH"\n'
    )
    rel = _shown(env_file)
    print(f"Queue:         {done.queue_url}")
    print(f"Logs:          {_shown(stack.logs)}/")
    print(f"Candles:       . {rel} && candleflow candles BTCUSDT --interval 1m")
    print(f"Alerts:        . {rel} && candleflow alerts --follow   (gaps: candleflow gaps)")
    print("Monitor:       ./scripts/monitor.sh")
    print("Stop:          ./scripts/stop.sh")
    return 0


def _shown(path: Path) -> Path:
    """A path as a person would type it here: relative to the checkout when it is inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _run_ingest_now(stack: Stack) -> None:
    """Start one ingest run at once instead of waiting for the scheduler's next minute."""
    import asyncio

    from prefect.client.orchestration import get_client

    async def trigger() -> None:
        async with get_client() as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    deployment = await client.read_deployment_by_name("ingest-trades/ingest-trades")
                    break
                except Exception:  # not registered yet: the serve process is still importing
                    if time.monotonic() > deadline:
                        raise ConfigError(
                            "the ingest deployment did not register within 120 s; "
                            f"see {stack.logs / 'deployments.log'}"
                        ) from None
                    await asyncio.sleep(1)
            await client.create_flow_run_from_deployment(deployment.id)

    asyncio.run(trigger())
    print("Ingest:        deployment 'ingest-trades' served every minute; first run started now")


def run_down(args: argparse.Namespace, settings: Settings) -> int:
    stack = Stack(settings)
    stopped = [name for name in STOP_ORDER if stack.stop(name)]
    if not stopped:
        print("nothing to stop: no process started by `candleflow up` is running")
    return 0
