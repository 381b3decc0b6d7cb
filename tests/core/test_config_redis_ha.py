"""Settings of a highly available Redis: Sentinel, Redis Cluster, TLS and AUTH."""

from __future__ import annotations

from pathlib import Path

import pytest

from overtone.cluster.redis_connect import connection_options, describe
from overtone.config import ConfigError, Scaling, load_settings

BASE = {"REVERB_SCALING_ENABLED": "true"}


def scaling(**env: str) -> Scaling:
    settings = load_settings({**BASE, **env})
    assert settings.scaling is not None
    return settings.scaling


def test_sentinel_settings() -> None:
    found = scaling(
        OVERTONE_REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2:26379,[::1]:26380",
        OVERTONE_REDIS_SENTINEL_MASTER="mymaster",
        OVERTONE_REDIS_SENTINEL_PASSWORD="s3cret",
        REDIS_PASSWORD="p@ss",
    )
    assert found.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert (found.sentinel_master, found.sentinel_password) == ("mymaster", "s3cret")
    assert found.broker_channel == "reverb"  # no hash tag outside a Redis Cluster
    assert connection_options(found)["password"] == "p@ss"
    assert "s3cret" not in describe(found) and "p@ss" not in describe(found)


def test_cluster_settings_tag_the_channel_and_take_tls_and_auth_from_the_url(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    found = scaling(
        OVERTONE_REDIS_CLUSTER_NODES="clustercfg.example.cache.amazonaws.com:6379",
        REDIS_URL="rediss://app:p%40ss@ignored:6379",
        REDIS_PREFIX="prod_",
        OVERTONE_REDIS_TLS_CA=str(ca),
    )
    assert found.broker_channel == "{prod_reverb}"
    assert connection_options(found) == {
        "username": "app",
        "password": "p@ss",
        "ssl": True,
        "ssl_ca_certs": str(ca),
    }
    assert scaling(OVERTONE_REDIS_CLUSTER_NODES="a:1", REDIS_PREFIX="{app}:").broker_channel == (
        "{app}:reverb"
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OVERTONE_REDIS_SENTINELS": "10.0.0.1"}, "OVERTONE_REDIS_SENTINELS"),
        ({"OVERTONE_REDIS_SENTINELS": "h:0"}, "OVERTONE_REDIS_SENTINELS"),
        ({"OVERTONE_REDIS_CLUSTER_NODES": " , "}, "OVERTONE_REDIS_CLUSTER_NODES"),
        ({"OVERTONE_REDIS_SENTINELS": "h:26379"}, "OVERTONE_REDIS_SENTINEL_MASTER"),
        (
            {"OVERTONE_REDIS_SENTINELS": "h:1", "OVERTONE_REDIS_CLUSTER_NODES": "h:2"},
            "OVERTONE_REDIS_CLUSTER_NODES",
        ),
        ({"OVERTONE_REDIS_CLUSTER_NODES": "h:1", "REDIS_DB": "2"}, "REDIS_DB"),
        ({"OVERTONE_REDIS_CLUSTER_NODES": "h:1", "REDIS_URL": "unix:///r.sock"}, "REDIS_URL"),
        ({"OVERTONE_REDIS_TLS_CA": "/no/such/ca.pem"}, "OVERTONE_REDIS_TLS_CA"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**BASE, **env})
