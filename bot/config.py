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

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "CAREERBOT_"
DEFAULT_DATA_DIR = "careerbot-data"


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

    @field_validator("reviewers", "coordinators")
    @classmethod
    def _check_user_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            platform, _, user_id = entry.partition(":")
            if not platform or not user_id:
                raise ValueError(f"{entry!r} is not platform:user_id, for example telegram:123456789")
        return value

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
