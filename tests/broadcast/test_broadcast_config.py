"""BroadcastConfig.from_env: Laravel's variables, defaults, and problems that turn it off."""

from __future__ import annotations

from pathlib import Path

import pytest

from overtone.broadcast import BroadcastConfig

CREDENTIALS = {"REVERB_APP_ID": "1", "REVERB_APP_KEY": "key", "REVERB_APP_SECRET": "secret"}


def test_a_laravel_production_env_posts_where_laravel_does() -> None:
    config = BroadcastConfig.from_env(
        {
            **CREDENTIALS,
            "REVERB_HOST": "example.com",
            "REVERB_PORT": "443",
            "REVERB_SCHEME": "https",
        }
    )
    assert config.enabled and config.disabled_reason is None
    assert (config.host, config.port, config.scheme) == ("example.com", 443, "https")
    assert config.api_base == "https://example.com:443"


def test_without_reverb_host_it_is_the_overtone_on_this_machine() -> None:
    config = BroadcastConfig.from_env({**CREDENTIALS, "REVERB_SERVER_PORT": "9001"})
    assert config.server_url == "http://127.0.0.1:9001"
    assert BroadcastConfig.from_env(CREDENTIALS).server_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("scheme", "port"), [("https", 443), ("http", 80), ("HTTP", 80), (None, 443)]
)
def test_the_port_defaults_to_the_schemes(scheme: str | None, port: int) -> None:
    env = {**CREDENTIALS, "REVERB_HOST": "example.com"}
    if scheme is not None:
        env["REVERB_SCHEME"] = scheme
    assert BroadcastConfig.from_env(env).port == port


def test_server_path_timeouts_strict_and_master_key() -> None:
    key = "uS+ZPHyKDRzMHr9QOXcYwhrNXvqNbdLZAMQD0gGEGBs="
    config = BroadcastConfig.from_env(
        {
            **CREDENTIALS,
            "REVERB_SERVER_PATH": "realtime/",
            "OVERTONE_BROADCAST_TIMEOUT": "0.5",
            "OVERTONE_BROADCAST_STRICT": "true",
            "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": key,
        }
    )
    assert config.path == "/realtime"
    assert config.api_base == "http://127.0.0.1:8080/realtime"
    assert (config.connect_timeout, config.read_timeout) == (0.5, 0.5)
    assert config.strict is True
    assert config.encryption_master_key_base64 == key


def test_defaults_are_fail_soft_with_two_second_timeouts() -> None:
    config = BroadcastConfig.from_env(CREDENTIALS)
    assert config.strict is False
    assert (config.connect_timeout, config.read_timeout) == (2.0, 2.0)
    assert config.path == "" and config.encryption_master_key_base64 is None


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "REVERB_APP_ID, REVERB_APP_KEY and REVERB_APP_SECRET are not set"),
        ({"REVERB_APP_ID": "1", "REVERB_APP_SECRET": "s"}, "REVERB_APP_KEY is not set"),
        (
            {"REVERB_APP_ID": "1", "REVERB_APP_KEY": "null", "REVERB_APP_SECRET": " "},
            "REVERB_APP_KEY and REVERB_APP_SECRET are not set",
        ),
        ({**CREDENTIALS, "REVERB_PORT": "eighty"}, "REVERB_PORT='eighty' is not a port number"),
        ({**CREDENTIALS, "REVERB_SERVER_PORT": "0"}, "REVERB_SERVER_PORT='0' is not a port"),
        ({**CREDENTIALS, "REVERB_SCHEME": "ws"}, "REVERB_SCHEME='ws' must be http or https"),
        ({**CREDENTIALS, "OVERTONE_BROADCAST_TIMEOUT": "-1"}, "OVERTONE_BROADCAST_TIMEOUT"),
        ({**CREDENTIALS, "OVERTONE_BROADCAST_STRICT": "maybe"}, "OVERTONE_BROADCAST_STRICT"),
        ({**CREDENTIALS, "OVERTONE_ENCRYPTION_MASTER_KEY_BASE64": "c2hvcnQ="}, "32 bytes"),
    ],
)
def test_missing_or_malformed_values_turn_it_off_naming_the_variable(
    env: dict[str, str], reason: str
) -> None:
    config = BroadcastConfig.from_env(env)
    assert not config.enabled
    assert config.disabled_reason is not None and reason in config.disabled_reason


def test_env_file_is_read_under_the_process_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        'REVERB_APP_ID=telemedicina-prod\nREVERB_APP_KEY="file-key"\n'
        "REVERB_APP_SECRET=file-secret\nREVERB_HOST=file.example\n"
    )
    config = BroadcastConfig.from_env({"REVERB_APP_KEY": "process-key"}, env_file=env_file)
    assert (config.app_id, config.key, config.secret) == (
        "telemedicina-prod",
        "process-key",
        "file-secret",
    )
    assert config.host == "file.example"


def test_a_missing_env_file_is_ignored(tmp_path: Path) -> None:
    config = BroadcastConfig.from_env(CREDENTIALS, env_file=tmp_path / "absent.env")
    assert config.enabled


def test_the_default_environment_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REVERB_HOST", "from-os.example")
    assert BroadcastConfig.from_env().host == "from-os.example"


def test_explicit_values_need_no_environment() -> None:
    config = BroadcastConfig(app_id="1", key="k", secret="s", host="::1", port=9000)
    assert config.enabled
    assert config.server_url == "http://[::1]:9000"
    assert BroadcastConfig(app_id="1", key="k").disabled_reason == "REVERB_APP_SECRET is not set"
