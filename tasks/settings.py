"""The one settings tree for candleflow, read once at each entry point and passed down.

Every field reads from the environment as ``CANDLEFLOW_<FIELD>`` (``CANDLEFLOW_SYMBOLS=BTCUSDT,ETHUSDT``).
AWS endpoints, region and credentials are *not* here: boto3 reads them from the standard chain
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``~/.aws/config``...), so the same code runs on moto, LocalStack and AWS.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CANDLEFLOW_", extra="ignore", frozen=True)

    # --- names of the AWS resources (see infra/spec.py) ---
    prefix: str = Field(
        "candleflow",
        pattern=r"^[a-z][a-z0-9-]{2,40}$",
        description="Prefix of every AWS resource name (queue, table, topic, bucket, Glue database).",
    )
    lake_bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket of the lake; defaults to '<prefix>-lake'. Bucket names are global on AWS.",
    )
    max_receive_count: int = Field(
        5,
        ge=1,
        le=1000,
        description="SQS receives of one message before redrive moves it to the DLQ.",
    )
    visibility_timeout_s: int = Field(
        120,
        ge=10,
        le=43_200,
        description="SQS visibility timeout of the trades queue, seconds.",
    )

    # --- markets ---
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"],
        description="Binance symbols to stream and to accept in ingest (comma-separated).",
    )

    # --- ingest ---
    batch_max_messages: int = Field(
        100, ge=1, le=10_000, description="SQS messages per ingest micro-batch at most."
    )
    batch_max_trades: int = Field(
        125_000,
        ge=1,
        le=10_000_000,
        description="Trades per ingest micro-batch at most. The ingest's peak memory grows with it "
        "(per-call costs, great-expectations' above all, make small batches slow): in `candleflow "
        "bench` the 1M-trade ingest peaked at 477 MB at 100,000, 483-489 MB at 125,000 and "
        "491-507 MB at 150,000, all at 62,000-83,000 trades/s end to end.",
    )
    receive_wait_s: int = Field(
        1,
        ge=0,
        le=20,
        description="SQS long-poll wait when the queue looks empty, seconds.",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest decoded (gunzipped) message body accepted; larger ones go to the DLQ.",
    )
    max_future_skew_s: int = Field(
        300,
        ge=0,
        le=86_400,
        description="Trades timed further than this after the worker's clock are rejected as insane.",
    )
    earliest_trade_time: datetime = Field(
        datetime(2017, 7, 1, tzinfo=UTC),
        description="Trades timed before this are rejected as insane (Binance opened in July 2017).",
    )
    max_empty_fill_minutes: int = Field(
        7 * 1440,
        ge=0,
        le=366 * 1440,
        description="Longest run of empty 1m klines written between two traded minutes.",
    )

    # --- rollups (1m -> 1h -> 1d) ---
    rollup_lookback_hours: int = Field(
        2,
        ge=0,
        le=31 * 24,
        description="A scheduled 1h rollup recomputes the current hour and this many before it.",
    )
    rollup_lookback_days: int = Field(
        2,
        ge=0,
        le=366,
        description="A scheduled 1d rollup recomputes the current day and this many before it.",
    )

    # --- gaps and backfill ---
    gap_settle_minutes: int = Field(
        3,
        ge=0,
        le=24 * 60,
        description=(
            "A hole in the trade ids is reported as a gap once the newest stored candle of the "
            "symbol is this many minutes past it (batches land out of order meanwhile)."
        ),
    )
    auto_fill_gaps: bool = Field(
        True,
        description="detect-gaps runs a backfill for every open gap it finds (from Binance REST).",
    )
    gap_fill_max_trades: int = Field(
        1_000_000,
        ge=1,
        le=100_000_000,
        description="Trades one backfill run fetches from Binance at most; larger gaps take more runs.",
    )
    binance_rest_url: str = Field(
        "https://api.binance.com",
        description="Base URL of Binance's spot REST API (backfill fetches missing trades there).",
    )
    binance_api_key: SecretStr | None = Field(
        None,
        description="Optional Binance API key, sent as X-MBX-APIKEY; market data needs none.",
    )
    binance_weight_per_minute: int = Field(
        3000,
        ge=25,
        le=6000,
        description=(
            "Request weight per minute backfills may use, enforced by a Prefect global rate limit "
            "(Binance allows 6000 per IP; leave room for anything else on the same address)."
        ),
    )

    # --- anomaly alerts (SNS) ---
    alert_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="E-mail addresses subscribed to the alerts topic by `candleflow provision` (comma-separated).",
    )
    alert_sms_numbers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Phone numbers (E.164, +61...) subscribed to the alerts topic by SMS (comma-separated).",
    )

    anomaly_rules: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description=(
            "Anomaly thresholds and windows for every symbol, as JSON with the keys of "
            'tasks.core.anomaly.OVERRIDE_KEYS, e.g. {"price_move_pct": "3", "stale_minutes": 10}.'
        ),
    )
    anomaly_symbol_rules: dict[str, dict[str, str | int | bool]] = Field(
        default_factory=dict,
        description=(
            "Per-symbol anomaly overrides as JSON, applied over anomaly_rules, e.g. "
            '{"ETHUSDT": {"price_move_pct": "3", "sma_crossover": true}}.'
        ),
    )
    alert_cooldown_minutes: int = Field(
        15,
        ge=1,
        le=1440,
        description="While a condition persists, it is announced again at most this often.",
    )

    # --- catalog and SQL (Glue, Athena, the local engine) ---
    query_engine: Literal["auto", "athena", "local"] = Field(
        "auto",
        description=(
            "Engine of `candleflow query`: Athena, or polars SQL reading the lake's Parquet from S3; "
            "auto = Athena when the AWS endpoint is AWS itself, the local engine otherwise."
        ),
    )
    athena_timeout_s: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="Longest wait for an Athena query to finish, seconds; it is cancelled after.",
    )
    glue_crawler_role: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
        description=(
            "IAM role ARN the Glue crawler runs as on AWS; when set, update-catalog creates the "
            "crawler and starts it every run. Unset: the flow leaves the crawler alone (the CDK "
            "stack's runs daily) and the catalog is kept current through the Glue API."
        ),
    )

    # --- producer ---
    binance_ws_url: str = Field(
        "wss://stream.binance.com:9443",
        description="Base URL of Binance's websocket API (combined streams are at <url>/stream).",
    )
    flush_interval_s: float = Field(
        1.0,
        gt=0,
        le=1.0,
        description="The producer sends buffered trades at least this often.",
    )
    max_message_bytes: int = Field(
        240 * 1024,
        ge=1024,
        le=256 * 1024,
        description="Largest SQS message body the producer builds (SQS allows 256 KiB).",
    )
    gzip_min_bytes: int = Field(
        4096,
        ge=0,
        description="Bodies at least this large are gzipped (content-encoding=gzip).",
    )
    send_queue_max: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="Bodies waiting for SQS at most; beyond it the producer drops and logs the ids.",
    )
    silence_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Reconnect when the websocket is silent this long, seconds.",
    )
    max_connection_age_s: float = Field(
        23.5 * 3600,
        gt=0,
        le=24 * 3600,
        description="Open a fresh connection after this long (Binance cuts connections at 24 h).",
    )
    reconnect_max_backoff_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Longest wait between reconnection attempts, seconds.",
    )

    # --- spreads ---
    spread_binance_symbols: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}$")]], NoDecode
    ] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"],
        description="Binance symbols the spread sampler keeps depth books of (comma-separated).",
    )
    spread_btcm_markets: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")]], NoDecode
    ] = Field(
        default_factory=lambda: ["BTC-AUD", "ETH-AUD", "XRP-AUD", "SOL-AUD", "LTC-AUD", "USDT-AUD"],
        description="BTCMarkets market ids the spread sampler polls (comma-separated, e.g. BTC-AUD).",
    )
    spread_sample_interval_s: float = Field(
        5.0,
        ge=0.5,
        le=60,
        description="The spread sampler takes one sample per market this often, seconds.",
    )
    spread_notional: Decimal = Field(
        Decimal(10_000),
        gt=0,
        description="Notional a spread sample buys and sells, in the market's quote currency.",
    )
    spread_notionals: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(
        default_factory=dict,
        description=(
            "Per-market notional overrides as JSON, e.g. "
            '{"BTCUSDT": "100000", "XRP-AUD": "5000"}; other markets use spread_notional.'
        ),
    )
    btcmarkets_rest_url: str = Field(
        "https://api.btcmarkets.net",
        description="Base URL of BTCMarkets' v3 REST API (the spread sampler reads order books).",
    )

    # --- embedded stack ---
    emulator_host: str = Field("127.0.0.1", description="Address the embedded moto server binds.")
    emulator_port: int = Field(
        5055, ge=1, le=65535, description="Port of the embedded moto server."
    )
    prefect_port: int = Field(
        4200,
        ge=1,
        le=65535,
        description="Port of the local Prefect server and UI `candleflow up` starts.",
    )
    replay_speed: float = Field(
        5.0,
        gt=0,
        le=1000,
        description="Pace of the capture replay `candleflow up` falls back to (x real time).",
    )
    api_host: str = Field(
        "127.0.0.1",
        description="Address the API and dashboard (`candleflow api`) bind; 0.0.0.0 in a container.",
    )
    api_port: int = Field(
        8080, ge=1, le=65535, description="Port of the API and dashboard `candleflow up` starts."
    )
    api_rate_limit: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="Requests one client may make per api_rate_window_s (the seed's WAF rule).",
    )
    api_rate_window_s: int = Field(
        300, ge=1, le=86_400, description="Window of the per-client API rate limit, seconds."
    )
    api_trust_forwarded_for: bool = Field(
        False,
        description=(
            "Take the client address for the rate limit from X-Forwarded-For (only behind a "
            "load balancer that sets it; otherwise clients could pick their own address)."
        ),
    )
    state_dir: str = Field(
        ".candleflow",
        description="Where `candleflow up` keeps pids, logs and the Prefect database.",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            value = [s for s in value.split(",") if s.strip()]
        if isinstance(value, list):
            return [str(s).strip().upper() for s in value]
        return value

    @field_validator(
        "alert_emails",
        "alert_sms_numbers",
        "spread_binance_symbols",
        "spread_btcm_markets",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("alert_emails")
    @classmethod
    def _check_emails(cls, value: list[str]) -> list[str]:
        bad = [e for e in value if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", e)]
        if bad:
            raise ValueError(f"CANDLEFLOW_ALERT_EMAILS holds addresses that are not e-mail: {bad}")
        return value

    @field_validator("alert_sms_numbers")
    @classmethod
    def _check_numbers(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not re.fullmatch(r"\+[1-9]\d{6,14}", n)]
        if bad:
            raise ValueError(
                f"CANDLEFLOW_ALERT_SMS_NUMBERS must be E.164 numbers like +61412345678, got {bad}"
            )
        return value

    @field_validator("anomaly_rules")
    @classmethod
    def _check_anomaly_rules(
        cls, value: dict[str, str | int | bool]
    ) -> dict[str, str | int | bool]:
        from tasks.core.anomaly import RuleSet

        RuleSet().with_overrides(value, "CANDLEFLOW_ANOMALY_RULES")
        return value

    @field_validator("anomaly_symbol_rules")
    @classmethod
    def _check_symbol_rules(
        cls, value: dict[str, dict[str, str | int | bool]]
    ) -> dict[str, dict[str, str | int | bool]]:
        from tasks.core.anomaly import RuleSet

        RuleSet(overrides=value)
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not s.isalnum()]
        if not value or bad:
            raise ValueError(
                f"CANDLEFLOW_SYMBOLS must list Binance symbols like BTCUSDT, got {bad}"
            )
        return value

    @property
    def bucket(self) -> str:
        return self.lake_bucket or f"{self.prefix}-lake"

    @property
    def emulator_url(self) -> str:
        return f"http://{self.emulator_host}:{self.emulator_port}"
