"""Front-end values: what HandleInertiaRequests shares, Echo options, the script snippet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overtone.broadcast import (
    FrontendConfig,
    echo_options_json,
    echo_script,
    frontend_config,
    recovery_script_tag,
)

PRODUCTION = {
    "REVERB_APP_ID": "telemedicina-prod",
    "REVERB_APP_KEY": "public-key",
    "REVERB_APP_SECRET": "never-in-a-page",
    "REVERB_HOST": "app.example.com",
    "REVERB_PORT": "443",
    "REVERB_SCHEME": "https",
}


def test_the_runbooks_production_env_gives_wss_on_443() -> None:
    config = frontend_config(PRODUCTION)
    assert config == FrontendConfig(key="public-key", host="app.example.com", port=443)
    assert config.to_dict() == {
        "key": "public-key",
        "host": "app.example.com",
        "port": 443,
        "scheme": "https",
        "path": "",
    }
    assert config.echo_options() == {
        "broadcaster": "reverb",
        "key": "public-key",
        "wsHost": "app.example.com",
        "wsPort": 443,
        "wssPort": 443,
        "forceTLS": True,
        "enabledTransports": ["ws", "wss"],
    }


def test_local_development_over_plain_ws_with_a_path() -> None:
    config = frontend_config(
        {
            "REVERB_APP_KEY": "k",
            "REVERB_HOST": "localhost",
            "REVERB_PORT": "8080",
            "REVERB_SCHEME": "http",
            "REVERB_SERVER_PATH": "/realtime/",
        }
    )
    assert config is not None
    options = config.echo_options()
    assert (options["wsPort"], options["forceTLS"], options["wsPath"]) == (8080, False, "/realtime")


def test_local_development_matches_the_broadcaster_fallback() -> None:
    config = frontend_config({"REVERB_APP_KEY": "k", "REVERB_SERVER_PORT": "9001"})
    assert config is not None
    assert (config.scheme, config.port, config.host) == ("http", 9001, None)


@pytest.mark.parametrize(("scheme", "port"), [("https", 443), ("http", 80)])
def test_port_defaults_follow_the_scheme(scheme: str, port: int) -> None:
    config = frontend_config({"REVERB_APP_KEY": "k", "REVERB_SCHEME": scheme})
    assert config is not None and config.port == port


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"REVERB_APP_KEY": ""},
        {"REVERB_APP_KEY": "null"},
        {"REVERB_APP_KEY": "k", "REVERB_PORT": "x"},
        {"REVERB_APP_KEY": "k", "REVERB_SCHEME": "ftp"},
    ],
)
def test_not_configured_is_none_so_the_page_can_say_realtime_is_off(
    env: dict[str, str],
) -> None:
    assert frontend_config(env) is None
    assert echo_options_json(None) == "null"
    assert echo_script(None) == "<script>window.Echo = null; /* realtime is off */</script>"


def test_the_request_host_or_the_pages_host_stands_in_for_a_missing_reverb_host() -> None:
    for request_host, host in (
        ("shop.example", "shop.example"),
        ("shop.example:8000", "shop.example"),
        ("[::1]:8000", "::1"),
        ("::1", "::1"),
    ):
        config = frontend_config({"REVERB_APP_KEY": "k"}, request_host=request_host)
        assert config is not None and config.host == host
    without = frontend_config({"REVERB_APP_KEY": "k"})
    assert without is not None and "wsHost" not in without.echo_options()
    assert "wsHost:window.location.hostname}" in echo_script(without)


def test_the_script_embeds_safe_json_and_never_the_secret() -> None:
    config = FrontendConfig(key="</script><b>&", host="h", port=443)
    script = echo_script(config, assign_to="window.realtime", nonce='n"1')
    assert script.startswith(
        '<script nonce="n&quot;1">window.realtime = new (Echo.default || Echo)({'
    )
    assert script.endswith("});</script>")
    assert script.count("</script>") == 1 and "<b>" not in script
    prefix = '<script nonce="n&quot;1">window.realtime = new (Echo.default || Echo)('
    body = script[len(prefix) : -len(");</script>")]
    assert json.loads(body)["key"] == "</script><b>&"
    page = echo_script(frontend_config(PRODUCTION)) + echo_options_json(frontend_config(PRODUCTION))
    assert "never-in-a-page" not in page
    with pytest.raises(ValueError, match="JavaScript name"):
        echo_script(config, assign_to="x; alert(1)")


def test_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("REVERB_APP_KEY=from-file\nREVERB_HOST=file.example\n")
    config = frontend_config({"REVERB_HOST": "process.example"}, env_file=env_file)
    assert config is not None
    assert (config.key, config.host) == ("from-file", "process.example")


POSITION = {"epoch": "Zx9-a_b", "offset": 12}


def test_positions_go_into_the_config_without_the_missing_ones() -> None:
    config = frontend_config(
        PRODUCTION,
        positions={"private-patient.7": POSITION, "presence-room.1": None},
    )
    assert config is not None
    assert config.positions == {"private-patient.7": POSITION}
    assert config.to_dict()["positions"] == {"private-patient.7": POSITION}
    assert "positions" not in config.echo_options()
    assert config == FrontendConfig(key="public-key", host="app.example.com", port=443)
    for bad in ({"epoch": 1, "offset": 2}, {"epoch": "e", "offset": -1}, {"epoch": "e"}):
        with pytest.raises(ValueError, match="position"):
            frontend_config(PRODUCTION, positions={"c": bad})


def test_echo_script_installs_the_add_on_with_the_positions() -> None:
    config = FrontendConfig(key="k", host="h", port=443)
    plain = echo_script(config)
    assert "OvertoneRecovery" not in plain  # no positions: the script is as before
    script = echo_script(config, positions={"private-a": POSITION, "b": None}, nonce="n")
    assert script.startswith('<script nonce="n">' + plain[len("<script>") : -len("</script>")])
    assert script.count("</script>") == 1 and script.endswith("</script>")
    assert "window.OvertoneRecovery" in script
    assert "add.install(echo.connector.pusher,{positions:positions,onResync:" in script
    assert "new CustomEvent('overtone:resync',{detail:{channel:c,position:at}})" in script
    assert script.endswith(
        f"}})(window.Echo,{json.dumps({'private-a': POSITION}, separators=(',', ':'))});</script>"
    )
    # The config's positions are used unless others are given; {} installs with none.
    with_config = frontend_config(PRODUCTION, positions={"x": POSITION})
    assert '(window.Echo,{"x":' in echo_script(with_config)
    assert "(window.Echo,{});" in echo_script(with_config, positions={})
    assert echo_script(None, positions={"x": POSITION}) == (
        "<script>window.Echo = null; /* realtime is off */</script>"
    )


def test_positions_are_embedded_safely() -> None:
    config = FrontendConfig(key="k", host="h", port=443)
    script = echo_script(config, positions={"</script><b>": {"epoch": "&\u2028", "offset": 1}})
    assert script.count("</script>") == 1 and "<b>" not in script and "\u2028" not in script
    assert '"\\u003c/script\\u003e\\u003cb\\u003e":{"epoch":"\\u0026\\u2028"' in script


def test_recovery_script_tag_points_at_overtone() -> None:
    production = frontend_config(PRODUCTION)
    assert recovery_script_tag(production) == (
        '<script src="https://app.example.com:443/overtone/recovery.js"></script>'
    )
    local = FrontendConfig(key="k", host="::1", port=8080, scheme="http", path="/realtime")
    assert local.recovery_url == "http://[::1]:8080/realtime/overtone/recovery.js"
    assert recovery_script_tag(local, nonce="a'b") == (
        '<script src="http://[::1]:8080/realtime/overtone/recovery.js" nonce="a&#x27;b"></script>'
    )
    assert recovery_script_tag(None) == ""
    pages_host = frontend_config({"REVERB_APP_KEY": "k", "REVERB_SERVER_PORT": "9001"})
    assert pages_host is not None and pages_host.recovery_url is None
    tag = recovery_script_tag(pages_host)
    assert tag == (
        '<script>document.write(\'<script src="\'+"http://"+window.location.hostname'
        '+":9001/overtone/recovery.js"+\'"><\\/script>\');</script>'
    )


def test_the_http_fallback_is_opt_in_and_points_at_the_same_host_and_port() -> None:
    config = frontend_config({**PRODUCTION, "REVERB_SERVER_PATH": "/rt"}, http_fallback=True)
    assert config is not None
    options = config.echo_options()
    assert options["enabledTransports"] == ["ws", "wss", "xhr_streaming", "xhr_polling"]
    assert options["disabledTransports"] == ["sockjs"]
    assert (options["httpHost"], options["httpPort"], options["httpsPort"]) == (
        "app.example.com",
        443,
        443,
    )
    assert options["httpPath"] == "/rt/pusher"
    plain = frontend_config(PRODUCTION)
    assert plain is not None and "httpHost" not in plain.echo_options()
    local = frontend_config({"REVERB_APP_KEY": "k"}, http_fallback=True)
    script = echo_script(local)
    assert "httpHost:window.location.hostname" in script
    assert "wsHost:window.location.hostname" in script
