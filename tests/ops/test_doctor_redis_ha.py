"""``overtone doctor``: the checks of highly available Redis settings (pure)."""

from __future__ import annotations

from overtone.doctor import config_checks
from overtone.doctor.report import Status

ON = {"REVERB_SCALING_ENABLED": "true"}
ELASTICACHE = "clustercfg.chat.abc123.euw1.cache.amazonaws.com"


def statuses(**env: str) -> list[tuple[str, Status]]:
    return [(check.name, check.status) for check in config_checks.redis({**ON, **env})]


def test_a_configuration_endpoint_needs_cluster_mode() -> None:
    assert statuses(REDIS_HOST=ELASTICACHE, REDIS_SCHEME="tls") == [("Redis topology", Status.FAIL)]
    assert statuses(OVERTONE_REDIS_CLUSTER_NODES=f"{ELASTICACHE}:6379", REDIS_SCHEME="tls") == []


def test_reader_endpoint_and_missing_tls() -> None:
    reader = "rediss://replica.chat.abc123.euw1.cache.amazonaws.com:6379"
    assert statuses(REDIS_URL=reader) == [("Redis topology", Status.FAIL)]
    assert statuses(REDIS_HOST="master.chat.abc123.euw1.cache.amazonaws.com") == [
        ("Redis TLS", Status.WARN)
    ]
    memorydb = "clustercfg.chat.abc123.memorydb.eu-west-1.amazonaws.com:6379"
    assert statuses(OVERTONE_REDIS_CLUSTER_NODES=memorydb) == [("Redis TLS", Status.FAIL)]


def test_too_few_sentinels_and_scaling_off() -> None:
    assert statuses(OVERTONE_REDIS_SENTINELS="10.0.0.1:26379") == [("Redis Sentinel", Status.WARN)]
    assert statuses(OVERTONE_REDIS_SENTINELS="a:1,b:1,c:1", REDIS_HOST="10.0.0.5") == []
    assert config_checks.redis({"REDIS_HOST": ELASTICACHE}) == []
