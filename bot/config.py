"""Configuration from an optional YAML file and ``CAREERBOT_*`` environment variables.

Environment variables win over the file. Each setting's environment variable
is its name in upper case with the ``CAREERBOT_`` prefix; list settings take a
comma-separated value, and mapping settings take ``key=value`` pairs separated
by commas (for example ``CAREERBOT_REVIEWER_CHATS=telegram=-1001234,slack=C0123``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.quiet_hours import parse_span

ENV_PREFIX = "CAREERBOT_"
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
DEFAULT_DATA_DIR = "careerbot-data"
MIN_PROCESSED_UPDATE_RETENTION_DAYS = 2
"""Shortest retention of processed_updates rows, in days. Telegram keeps an undelivered update for at most
24 hours (Bot API documentation, "Getting updates"). Slack retries a failed event three times, the last one
after 5 minutes (Events API documentation, "Retries"). 2 days outlast both with a day to spare."""


class ConfigError(Exception):
    """The configuration file or an environment variable has an invalid value."""


class Settings(BaseModel):
    """Every setting careerbot reads; the field descriptions are the help text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default=Path(DEFAULT_DATA_DIR),
        description="folder for the SQLite database and stored evidence files",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database; default: a SQLite file in data_dir",
    )
    flows_dir: Path | None = Field(
        default=None,
        description="folder with conversation.yaml, catalog.yaml and messages.yaml; default: the shipped flows",
    )
    reviewers: tuple[str, ...] = Field(
        default=("console:reviewer",),
        description="users who may decide on submissions, as platform:user_id",
    )
    coordinators: tuple[str, ...] = Field(
        default=("console:coordinator",),
        description="users who may send nudges and read reports, as platform:user_id",
    )
    reviewer_chats: dict[str, str] = Field(
        default_factory=lambda: {"console": "reviewers"},
        description="per platform, the chat or channel id where submissions are posted",
    )
    max_message_chars: int = Field(
        default=20000, ge=100, description="longest inbound message the bot reads, in characters"
    )
    log_level: str = Field(default="INFO", description="logging level: DEBUG, INFO, WARNING or ERROR")
    log_format: str = Field(
        default="text", description="'text' for one readable line per record, 'json' for one JSON object per line"
    )
    database_connect_timeout: int = Field(
        default=5, ge=1, le=120,
        description="seconds to wait for a PostgreSQL connection before the request or health check fails",
    )

    # --- background work ---
    job_queue: str = Field(
        default="in-process",
        description="'in-process': each careerbot run or serve process delivers its outbox and checks reminder "
        "rules itself (one process, SQLite or PostgreSQL); 'procrastinate': careerbot worker processes do it "
        "as procrastinate jobs on PostgreSQL, and serve workers only queue them",
    )
    processed_update_retention_days: int = Field(
        default=30, ge=MIN_PROCESSED_UPDATE_RETENTION_DAYS, le=3650,
        description="days the record of a handled inbound update is kept, so that a redelivery of the update "
        "changes nothing. careerbot run, serve or worker deletes older records once a day, and an update "
        "redelivered after that is handled again. At least 2, because Telegram keeps an undelivered update "
        "for at most 24 hours and Slack retries a failed event within minutes",
    )

    # --- nudges ---
    quiet_hours: str = Field(
        default="21:00-08:00",
        description="local time span, as HH:MM-HH:MM, in which no reminder or coordinator message is delivered; "
        "one due then waits until the span ends in the learner's time zone (equal times: no quiet hours)",
    )
    nudge_check_minutes: int = Field(
        default=5, ge=0, le=1440,
        description="minutes between two checks of the reminder rules in flows/nudges.yaml by careerbot run "
        "and careerbot serve; 0 turns these checks off (then schedule careerbot nudges run-once instead)",
    )

    # --- the web app (webhooks, badge verification, supervisor forms) ---
    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        description="public URL where careerbot's web app is reachable; badge and form links start with it",
    )
    listen_host: str = Field(default="127.0.0.1", description="address the web app listens on")
    listen_port: int = Field(default=8080, ge=1, le=65535, description="port the web app listens on")

    # --- Telegram ---
    telegram_token: str | None = Field(default=None, description="Telegram bot token from @BotFather")
    telegram_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base URL; point it at a self-hosted Bot API server if you run one",
    )
    telegram_base_file_url: str = Field(
        default="https://api.telegram.org/file/bot", description="Bot API base URL for file downloads"
    )
    telegram_mode: str = Field(default="polling", description="'polling' (one process) or 'webhook'")
    telegram_webhook_secret: str | None = Field(
        default=None, description="secret_token Telegram sends with each webhook request (required for webhook mode)"
    )
    telegram_rate_limits: bool = Field(
        default=True,
        description="pace sends within Telegram's limits (30 per second, 1 per second per chat, 20 per minute per "
        "group); turn off only against a test Bot API server",
    )

    # --- Slack ---
    slack_bot_token: str | None = Field(default=None, description="Slack bot token (xoxb-...)")
    slack_app_token: str | None = Field(default=None, description="Slack app-level token for Socket Mode (xapp-...)")
    slack_signing_secret: str | None = Field(default=None, description="Slack signing secret for HTTP mode")
    slack_base_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base URL (another one on Slack's government cloud)"
    )
    slack_mode: str = Field(default="socket", description="'socket' (Socket Mode) or 'http'")
    slack_rate_limits: bool = Field(
        default=True,
        description="pace posts within Slack's limit of about 1 per second per channel; turn off only against "
        "a test Web API server",
    )

    # --- Open Badges ---
    issuer_name: str = Field(default="Career Prepared Program", description="name of the organization issuing badges")
    issuer_url: str = Field(default="https://example.edu", description="web site of the issuing organization")
    issuer_email: str = Field(default="badges@example.edu", description="contact email of the issuer")
    issuer_image: str | None = Field(default=None, description="URL of the issuer's logo")
    issuer_linkedin_organization_id: str | None = Field(
        default=None,
        description="the issuer's LinkedIn organization id; 'Add to LinkedIn' links then name the "
        "organization page instead of issuer_name",
    )
    issuer_key_file: Path | None = Field(
        default=None, description="PEM private key (Ed25519 or RSA) that signs Open Badges 3.0 credentials"
    )

    # --- supervisor evaluations ---
    evaluation_link_days: int = Field(
        default=30, ge=1, le=365, description="days a supervisor evaluation link stays valid"
    )
    form_secret: str | None = Field(
        default=None, min_length=32,
        description="secret that signs the CSRF tokens of web forms; default: a random secret "
        "kept in data_dir/form-secret (give every worker the same one)",
    )
    smtp_url: str | None = Field(
        default=None,
        description="mail server for evaluation links, as smtp://[user:password@]host[:port] "
        "(smtp+starttls:// or smtps:// for TLS); default: no email, learners forward the link",
    )
    smtp_from: str | None = Field(default=None, description="sender address of emails; default: issuer_email")

    @field_validator("reviewers", "coordinators")
    @classmethod
    def _check_user_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            platform, _, user_id = entry.partition(":")
            if not platform or not user_id:
                raise ValueError(f"{entry!r} is not platform:user_id, for example telegram:123456789")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            # The URL may hold a password, so the message does not repeat it.
            raise ValueError(f"the SMTP URL must look like smtp://host:25, with a scheme of {', '.join(SMTP_SCHEMES)}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str) -> str:
        parse_span(value)
        return value.strip()

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        log_format = value.strip().lower()
        if log_format not in ("text", "json"):
            raise ValueError(f"{value!r} is not a log format; use text or json")
        return log_format

    @field_validator("job_queue")
    @classmethod
    def _check_job_queue(cls, value: str) -> str:
        job_queue = value.strip().lower()
        if job_queue not in ("in-process", "procrastinate"):
            raise ValueError(f"{value!r} is not a job queue; use in-process or procrastinate")
        return job_queue

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"{value!r} is not a logging level; use DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _check_job_queue_database(self) -> Settings:
        if self.job_queue == "procrastinate" and not self.resolved_database_url.startswith("postgresql"):
            raise ValueError("job_queue 'procrastinate' needs a PostgreSQL database_url "
                             "(postgresql+psycopg://user@host/db); use 'in-process' with SQLite")
        return self

    @property
    def outbox_delivered_in_process(self) -> bool:
        """True when each run or serve process delivers the outbox rows itself; False when worker jobs do."""
        return self.job_queue == "in-process"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'careerbot.sqlite3').as_posix()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def is_reviewer(self, user_key: str) -> bool:
        return user_key in self.reviewers

    def is_coordinator(self, user_key: str) -> bool:
        return user_key in self.coordinators

    def reviewer_chat(self, platform: str) -> str | None:
        return self.reviewer_chats.get(platform)


def _parse_env_value(name: str, raw: str, annotation: Any) -> Any:
    text = str(annotation)
    if "tuple" in text:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if "dict" in text:
        pairs: dict[str, str] = {}
        for part in filter(None, (piece.strip() for piece in raw.split(","))):
            key, separator, value = part.partition("=")
            if not separator:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: {part!r} is not key=value")
            pairs[key.strip()] = value.strip()
        return pairs
    return raw


def load_settings(config_file: Path | str | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build settings from the file (if any), then the environment, then ``overrides``.

    Raises:
        ConfigError: a value is invalid; the message names the setting.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the configuration file {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the configuration file must contain a mapping")
        values.update(loaded)

    for name, field in Settings.model_fields.items():
        raw = environ.get(f"{ENV_PREFIX}{name.upper()}")
        if raw is not None:
            values[name] = _parse_env_value(name, raw, field.annotation)

    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        raise ConfigError(f"invalid configuration: {details}") from None
