"""Settings from Reverb's variables, .env files and apps files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overtone.apps import ClientEventsFrom
from overtone.channels.history import HistoryLimits
from overtone.config import DEV_APP, ConfigError, load_settings, read_environment

REVERB = {"REVERB_APP_ID": "1", "REVERB_APP_KEY": "k", "REVERB_APP_SECRET": "s"}


def test_reverb_variables() -> None:
    settings = load_settings(
        {
            **REVERB,
            "REVERB_SERVER_HOST": "127.0.0.1",
            "REVERB_SERVER_PORT": "9000",
            "REVERB_SERVER_PATH": "ws/",
            "REVERB_APP_MAX_CONNECTIONS": "",
            "REVERB_APP_MAX_MESSAGE_SIZE": "20000",
            "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM": "all",
            "REVERB_APP_RATE_LIMITING_ENABLED": "true",
            "REVERB_APP_RATE_LIMITING_MAX_ATTEMPTS": "60",
            "REVERB_HOST": "example.com",
            "REVERB_PORT": "443",
        }
    )
    [app] = settings.apps
    assert (settings.host, settings.port, settings.path) == ("127.0.0.1", 9000, "/ws")
    assert (app.id, app.key, app.secret) == ("1", "k", "s")
    assert app.max_connections is None and app.max_message_size == 20_000
    assert app.client_events_from is ClientEventsFrom.ALL
    assert app.rate_limit.max_attempts == 60
    assert not settings.using_dev_app


def test_dotenv_file_under_process_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        '# comment\nREVERB_APP_ID=telemedicina-prod\nREVERB_APP_KEY="from-file"\n'
        "REVERB_APP_SECRET=${REVERB_APP_KEY}-secret\nREVERB_SERVER_PORT=8080\n"
    )
    merged = read_environment({"REVERB_SERVER_PORT": "9999"}, env_file)
    settings = load_settings(merged)
    assert settings.port == 9999
    assert settings.apps[0].secret == "from-file-secret"
    with pytest.raises(ConfigError, match="no such file"):
        read_environment({}, tmp_path / "missing.env")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({**REVERB, "REVERB_SERVER_PORT": "eighty"}, "REVERB_SERVER_PORT"),
        ({**REVERB, "REVERB_SERVER_PORT": "70000"}, "REVERB_SERVER_PORT"),
        ({**REVERB, "REVERB_APP_MAX_CONNECTIONS": "-1"}, "REVERB_APP_MAX_CONNECTIONS"),
        ({**REVERB, "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM": "x"}, "members, all, none"),
        ({**REVERB, "REVERB_APP_RATE_LIMITING_ENABLED": "maybe"}, "boolean"),
        ({"REVERB_APP_KEY": "k", "REVERB_APP_SECRET": "s"}, "REVERB_APP_ID"),
        ({"REVERB_APP_ID": "1", "REVERB_APP_KEY": "k"}, "REVERB_APP_SECRET"),
        ({"APP_ENV": "production"}, "no app is configured"),
        (
            {
                "APP_ENV": "production",
                "REVERB_APP_ID": "1",
                "REVERB_APP_KEY": DEV_APP.key,
                "REVERB_APP_SECRET": "x",
            },
            "development credentials",
        ),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(env)


def test_development_app_when_nothing_is_configured() -> None:
    settings = load_settings({})
    assert settings.apps == (DEV_APP,) and settings.using_dev_app


def test_command_line_overrides() -> None:
    settings = load_settings(REVERB, port=1234, path="/p/", debug=True, host=None)
    assert (settings.port, settings.path, settings.debug, settings.host) == (
        1234,
        "/p",
        True,
        "0.0.0.0",
    )


def test_apps_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "apps.toml"
    toml.write_text(
        '[[apps]]\nid = "a"\nkey = "ka"\nsecret = "sa"\nmax_connections = 5\n'
        'allowed_origins = ["*.example.com"]\naccept_client_events_from = "none"\n'
        "[apps.rate_limit]\nmax_attempts = 3\n"
        '[[apps]]\nid = "b"\nkey = "kb"\nsecret = "sb"\nenabled = false\n'
    )
    a, b = load_settings({"OVERTONE_APPS_FILE": str(toml)}).apps
    assert a.max_connections == 5 and a.allowed_origins == ("*.example.com",)
    assert a.client_events_from is ClientEventsFrom.NONE and a.rate_limit.max_attempts == 3
    assert not b.enabled
    js = tmp_path / "apps.json"
    js.write_text(json.dumps({"apps": [{"id": 1, "key": "k", "secret": "s"}]}))
    assert load_settings({"OVERTONE_APPS_FILE": str(js)}).apps[0].id == "1"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not toml [", "not valid"),
        ("[[apps]]\nid='a'\nkey='k'\n", "secret"),
        ("[[apps]]\nid='a'\nkey='k'\nsecret='s'\ncolour='red'\n", "colour"),
        ("[[apps]]\nid='a'\nkey='k'\nsecret='s'\nmax_connections='many'\n", "max_connections"),
        ("apps = []\n", "non-empty"),
        (
            "[[apps]]\nid='a'\nkey='k'\nsecret='s'\n[[apps]]\nid='a'\nkey='k2'\nsecret='s'\n",
            "unique",
        ),
    ],
)
def test_bad_apps_file(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "apps.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words):
        load_settings({"OVERTONE_APPS_FILE": str(path)})


def test_history_variables() -> None:
    default = load_settings(REVERB)
    assert default.apps[0].history == HistoryLimits(enabled=True, max_events=100, ttl=300.0)
    assert default.history_memory == 64 * 1_048_576
    settings = load_settings(
        {
            **REVERB,
            "OVERTONE_HISTORY_ENABLED": "false",
            "OVERTONE_HISTORY_MAX_EVENTS": "10",
            "OVERTONE_HISTORY_TTL": "60.5",
            "OVERTONE_HISTORY_MEMORY": "1048576",
        }
    )
    assert settings.apps[0].history == HistoryLimits(enabled=False, max_events=10, ttl=60.5)
    assert settings.history_memory == 1_048_576
    unset = load_settings({**REVERB, "OVERTONE_HISTORY_MAX_EVENTS": "", "OVERTONE_HISTORY_TTL": ""})
    assert unset.apps[0].history == HistoryLimits()


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("OVERTONE_HISTORY_ENABLED", "maybe", "boolean"),
        ("OVERTONE_HISTORY_MAX_EVENTS", "many", "not an integer"),
        ("OVERTONE_HISTORY_MAX_EVENTS", "0", "at least 1"),
        ("OVERTONE_HISTORY_MAX_EVENTS", "2.5", "not an integer"),
        ("OVERTONE_HISTORY_TTL", "soon", "not a number"),
        ("OVERTONE_HISTORY_TTL", "0.5", "at least 1"),
        ("OVERTONE_HISTORY_TTL", "nan", "at least 1"),
        ("OVERTONE_HISTORY_MEMORY", "lots", "not an integer"),
        ("OVERTONE_HISTORY_MEMORY", "1000", "at least 65536"),
    ],
)
def test_bad_history_variables_name_the_variable(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{words}"):
        load_settings({**REVERB, name: value})


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("history = { enabled = false }", HistoryLimits(enabled=False)),
        ("history = { max_events = 10, ttl = 60 }", HistoryLimits(max_events=10, ttl=60.0)),
        ("history = { ttl = 2.5 }", HistoryLimits(ttl=2.5)),
        ("history = false", HistoryLimits(enabled=False)),
        ("history = true", HistoryLimits()),
        ("history = {}", HistoryLimits()),
        ("", HistoryLimits()),
    ],
)
def test_apps_file_history_table(tmp_path: Path, table: str, expected: HistoryLimits) -> None:
    path = tmp_path / "apps.toml"
    path.write_text(f"[[apps]]\nid = 'a'\nkey = 'k'\nsecret = 's'\n{table}\n")
    [app] = load_settings({"OVERTONE_APPS_FILE": str(path)}).apps
    assert app.history == expected


def test_apps_file_history_in_json(tmp_path: Path) -> None:
    path = tmp_path / "apps.json"
    apps = [
        {"id": "a", "key": "ka", "secret": "s", "history": {"max_events": 5, "enabled": True}},
        {"id": "b", "key": "kb", "secret": "s", "history": False},
    ]
    path.write_text(json.dumps({"apps": apps}))
    a, b = load_settings({"OVERTONE_APPS_FILE": str(path)}).apps
    assert a.history == HistoryLimits(max_events=5)
    assert not b.history.enabled


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("history = { size = 3 }", r"history: unknown option\(s\) \['size'\]"),
        ("history = 'on'", "history must be a table/object or true/false"),
        ("history = 10", "history must be a table/object or true/false"),
        ("history = { max_events = 0 }", r"history\.max_events=0 must be at least 1"),
        ("history = { max_events = 'ten' }", r"history\.max_events='ten' is not an integer"),
        ("history = { ttl = 0 }", r"history\.ttl=0.0 must be at least 1"),
        ("history = { enabled = 'perhaps' }", r"history\.enabled='perhaps' is not a boolean"),
    ],
)
def test_bad_apps_file_history(tmp_path: Path, table: str, words: str) -> None:
    path = tmp_path / "apps.toml"
    path.write_text(f"[[apps]]\nid = 'a'\nkey = 'k'\nsecret = 's'\n{table}\n")
    with pytest.raises(ConfigError, match=words):
        load_settings({"OVERTONE_APPS_FILE": str(path)})


def test_the_development_app_honours_the_history_variables() -> None:
    settings = load_settings({"OVERTONE_HISTORY_ENABLED": "false"})
    assert settings.using_dev_app
    assert settings.apps[0].key == DEV_APP.key
    assert settings.apps[0].history.enabled is False
    with pytest.raises(ConfigError, match="OVERTONE_HISTORY_TTL"):
        load_settings({"OVERTONE_HISTORY_TTL": "soon"})


def test_hosted_pusher_features_from_variables_and_the_apps_file(tmp_path: Path) -> None:
    app = load_settings(
        {
            **REVERB,
            "OVERTONE_SUBSCRIPTION_COUNT": "true",
            "OVERTONE_AUTHORIZED_CONNECTIONS": "true",
            "OVERTONE_AUTHORIZATION_TIMEOUT": "12.5",
            "OVERTONE_WEBHOOK_URL": "http://127.0.0.1:1/hooks",
            "OVERTONE_WEBHOOK_EVENTS": "channel_occupied,subscription_count",
        }
    ).apps[0]
    assert app.subscription_count and app.authorized_connections
    assert app.authorization_timeout == 12.5
    assert app.wants_webhook("subscription_count")
    plain = load_settings({**REVERB, "OVERTONE_WEBHOOK_URL": "http://127.0.0.1:1/hooks"}).apps[0]
    assert not plain.subscription_count and not plain.authorized_connections
    assert plain.authorization_timeout == 30
    assert plain.wants_webhook("channel_vacated") and not plain.wants_webhook("subscription_count")
    dev = load_settings({"OVERTONE_SUBSCRIPTION_COUNT": "1"}).apps[0]
    assert dev.key == DEV_APP.key and dev.subscription_count
    toml = tmp_path / "apps.toml"
    toml.write_text(
        '[[apps]]\nid = "a"\nkey = "ka"\nsecret = "sa"\nsubscription_count = true\n'
        "authorized_connections = true\nauthorization_timeout = 5\n"
    )
    [listed] = load_settings({"OVERTONE_APPS_FILE": str(toml)}).apps
    assert listed.subscription_count and listed.authorized_connections
    assert listed.authorization_timeout == 5


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("OVERTONE_SUBSCRIPTION_COUNT", "maybe", "not a boolean"),
        ("OVERTONE_AUTHORIZED_CONNECTIONS", "yes please", "not a boolean"),
        ("OVERTONE_AUTHORIZATION_TIMEOUT", "soon", "not a number"),
        ("OVERTONE_AUTHORIZATION_TIMEOUT", "0.5", "at least 1"),
    ],
)
def test_bad_hosted_pusher_feature_settings_name_the_variable(
    tmp_path: Path, name: str, value: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{words}"):
        load_settings({**REVERB, name: value})
    key = name.removeprefix("OVERTONE_").lower()
    toml = tmp_path / "apps.toml"
    toml.write_text(f'[[apps]]\nid = "a"\nkey = "ka"\nsecret = "sa"\n{key} = "{value}"\n')
    with pytest.raises(ConfigError, match=rf"apps\[0\]\.{key}.*{words}"):
        load_settings({"OVERTONE_APPS_FILE": str(toml)})
