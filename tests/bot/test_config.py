"""Settings from a YAML file and CAREERBOT_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "careerbot.yaml"
    path.write_text(
        "data_dir: /srv/careerbot\n"
        "max_message_chars: 5000\n"
        "reviewers: [telegram:111, console:reviewer]\n"
        "reviewer_chats: {telegram: '-1001'}\n",
        encoding="utf-8",
    )
    return path


def test_file_values_loaded(config_file):
    settings = load_settings(config_file, environ={})

    assert settings.data_dir == Path("/srv/careerbot")
    assert settings.max_message_chars == 5000
    assert settings.reviewers == ("telegram:111", "console:reviewer")
    assert settings.reviewer_chat("telegram") == "-1001"


def test_env_overrides_file(config_file):
    environ = {
        "CAREERBOT_MAX_MESSAGE_CHARS": "8000",
        "CAREERBOT_REVIEWERS": "slack:U1, slack:U2",
        "CAREERBOT_REVIEWER_CHATS": "slack=C0123,telegram=-1002",
    }

    settings = load_settings(config_file, environ=environ)

    assert settings.data_dir == Path("/srv/careerbot")
    assert settings.max_message_chars == 8000
    assert settings.reviewers == ("slack:U1", "slack:U2")
    assert settings.reviewer_chats == {"slack": "C0123", "telegram": "-1002"}


def test_config_file_from_env(config_file):
    settings = load_settings(environ={"CAREERBOT_CONFIG": str(config_file)})

    assert settings.max_message_chars == 5000


def test_overrides_beat_env():
    settings = load_settings(environ={"CAREERBOT_DATA_DIR": "/env"}, data_dir=Path("/cli"))

    assert settings.data_dir == Path("/cli")


def test_database_url_defaults_to_sqlite_in_data_dir():
    settings = load_settings(environ={}, data_dir=Path("/srv/cb"))

    assert settings.resolved_database_url == "sqlite:////srv/cb/careerbot.sqlite3"
    assert settings.files_dir == Path("/srv/cb/files")


@pytest.mark.parametrize("environ, setting", [
    ({"CAREERBOT_MAX_MESSAGE_CHARS": "many"}, "max_message_chars"),
    ({"CAREERBOT_MAX_MESSAGE_CHARS": "10"}, "max_message_chars"),
    ({"CAREERBOT_LISTEN_PORT": "70000"}, "listen_port"),
    ({"CAREERBOT_REVIEWERS": "alice"}, "reviewers"),
    ({"CAREERBOT_REVIEWER_CHATS": "slack"}, "REVIEWER_CHATS"),
    ({"CAREERBOT_LOG_LEVEL": "LOUD"}, "log_level"),
    ({"CAREERBOT_PROCESSED_UPDATE_RETENTION_DAYS": "1"}, "processed_update_retention_days"),
])
def test_invalid_env_value_names_setting(environ, setting):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)

    assert setting in str(caught.value)


def test_retention_default_and_env():
    default = load_settings(environ={})
    shortest = load_settings(environ={"CAREERBOT_PROCESSED_UPDATE_RETENTION_DAYS": "2"})

    assert default.processed_update_retention_days == 30
    assert shortest.processed_update_retention_days == 2


def test_unknown_file_key_names_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data_dri: /tmp\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    assert "data_dri" in str(caught.value)


@pytest.mark.parametrize("content", ["[1, 2]\n", "data_dir: [unclosed\n"])
def test_unreadable_file_raises(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    assert str(path) in str(caught.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.yaml", environ={})

    assert "absent.yaml" in str(caught.value)
