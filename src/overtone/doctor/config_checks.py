"""Checks of the ``.env`` values that Reverb deployments most often get wrong.

Pure, except :func:`nginx_sites`, which reads nginx's configuration for :func:`dashboard`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from overtone.config import DEV_APP
from overtone.doctor.report import Check, Status
from overtone.envvars import ConfigError, bool_value

WEAK_VALUES = {"secret", "changeme", "password", "key", "app-key", "app-secret", "test"}
LOCAL_HOSTS = {"0.0.0.0", "127.0.0.1", "localhost", "::", "::1"}
MIN_SECRET = 16
MIN_DASHBOARD_PASSWORD = 12
NGINX_ROOT = Path("/etc/nginx")
_NGINX_FILES = ("nginx.conf", "conf.d/*.conf", "sites-enabled/*", "snippets/*.conf")
_NGINX_TLS = re.compile(r"^\s*(ssl_certificate\s|listen\s[^;#]*\bssl\b)", re.MULTILINE)


def _get(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip().strip('"').strip("'")


def credentials(env: Mapping[str, str]) -> list[Check]:
    """App id, key and secret: present and not weak."""
    production = _get(env, "APP_ENV").lower() == "production"
    missing = [
        n for n in ("REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET") if not _get(env, n)
    ]
    if missing:
        return [
            Check(
                "app credentials",
                Status.FAIL,
                f"{', '.join(missing)} not set",
                "run `overtone install` to generate them into .env",
            )
        ]
    checks = [Check("app credentials", Status.OK, f"app id {_get(env, 'REVERB_APP_ID')}")]
    secret = _get(env, "REVERB_APP_SECRET")
    key = _get(env, "REVERB_APP_KEY")
    weak = (
        len(secret) < MIN_SECRET
        or secret.lower() in WEAK_VALUES
        or secret == DEV_APP.secret
        or key in (DEV_APP.key, secret)
    )
    if weak:
        checks.append(
            Check(
                "secret strength",
                Status.FAIL if production else Status.WARN,
                f"REVERB_APP_SECRET is weak ({len(secret)} characters"
                f"{', same as the key' if secret == key else ''})",
                "use a long random value: `overtone install --force` or "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`",
            )
        )
    else:
        checks.append(Check("secret strength", Status.OK, f"{len(secret)} characters"))
    return checks


def addresses(env: Mapping[str, str]) -> list[Check]:
    """``REVERB_HOST/PORT/SCHEME`` (what browsers dial) against ``REVERB_SERVER_*`` (bind)."""
    checks: list[Check] = []
    production = _get(env, "APP_ENV").lower() == "production"
    host = _get(env, "REVERB_HOST")
    port = _get(env, "REVERB_PORT")
    scheme = _get(env, "REVERB_SCHEME").lower() or "https"
    server_host = _get(env, "REVERB_SERVER_HOST") or "0.0.0.0"
    server_port = _get(env, "REVERB_SERVER_PORT") or "8080"
    tls_here = bool(_get(env, "OVERTONE_TLS_CERT"))
    if not host:
        checks.append(
            Check(
                "public host",
                Status.FAIL,
                "REVERB_HOST is not set",
                "set REVERB_HOST to the domain browsers use, e.g. REVERB_HOST=app.example.com",
            )
        )
    elif host in LOCAL_HOSTS and production:
        checks.append(
            Check(
                "public host",
                Status.FAIL,
                f"REVERB_HOST={host} in production",
                "REVERB_HOST is the public name browsers dial (your domain); the bind "
                "address is REVERB_SERVER_HOST",
            )
        )
    else:
        checks.append(Check("public host", Status.OK, host))
    if "." in server_host and not server_host.replace(".", "").isdigit():
        checks.append(
            Check(
                "bind address",
                Status.WARN,
                f"REVERB_SERVER_HOST={server_host} looks like a domain name",
                "REVERB_SERVER_HOST is the interface to bind (0.0.0.0 or 127.0.0.1 behind "
                "Nginx); put the domain in REVERB_HOST",
            )
        )
    if scheme not in ("http", "https"):
        checks.append(
            Check("scheme", Status.FAIL, f"REVERB_SCHEME={scheme}", "use https (or http)")
        )
    elif port:
        checks.append(_port_check(scheme, port, server_port, tls_here, production))
    broadcast = _get(env, "BROADCAST_CONNECTION") or _get(env, "BROADCAST_DRIVER")
    if broadcast in ("reverb", "pusher"):
        checks.append(Check("BROADCAST_CONNECTION", Status.OK, broadcast))
    elif "BROADCAST_CONNECTION" in env or "BROADCAST_DRIVER" in env or "APP_KEY" in env:
        checks.append(
            Check(
                "BROADCAST_CONNECTION",
                Status.WARN,
                f"{broadcast or 'not set'}: Laravel will not broadcast to overtone",
                "set BROADCAST_CONNECTION=reverb (Laravel 11+) or BROADCAST_DRIVER=reverb",
            )
        )
    for name in ("KEY", "HOST", "PORT", "SCHEME"):
        vite = _get(env, f"VITE_REVERB_{'APP_' if name == 'KEY' else ''}{name}")
        real = _get(env, f"REVERB_{'APP_' if name == 'KEY' else ''}{name}")
        if vite and not vite.startswith("${") and real and vite != real:
            checks.append(
                Check(
                    "front-end mirror",
                    Status.WARN,
                    f"VITE_REVERB_{'APP_' if name == 'KEY' else ''}{name}={vite} but "
                    f"REVERB_{'APP_' if name == 'KEY' else ''}{name}={real}",
                    'mirror the value: VITE_REVERB_HOST="${REVERB_HOST}" and rebuild the assets',
                )
            )
    return checks


def _port_check(
    scheme: str, port: str, server_port: str, tls_here: bool, production: bool
) -> Check:
    if (scheme == "https" and port == "80") or (scheme == "http" and port == "443"):
        return Check(
            "scheme and port",
            Status.FAIL,
            f"REVERB_SCHEME={scheme} with REVERB_PORT={port}",
            "https is served on 443 and http on 80 (or set the port the proxy listens on)",
        )
    if scheme == "https" and port == server_port and not tls_here:
        return Check(
            "scheme and port",
            Status.FAIL,
            f"browsers would dial wss://...:{port}, the internal port, which serves no TLS",
            "behind Nginx set REVERB_PORT=443 (the proxy's port) and keep "
            f"REVERB_SERVER_PORT={server_port}; or give overtone OVERTONE_TLS_CERT/KEY",
        )
    if production and scheme == "http":
        return Check(
            "scheme and port",
            Status.WARN,
            "REVERB_SCHEME=http in production: browsers on https pages refuse ws://",
            "serve TLS (Nginx on 443) and set REVERB_SCHEME=https, REVERB_PORT=443",
        )
    return Check("scheme and port", Status.OK, f"{scheme} on {port}")


def file_limit(soft: int, hard: int, expected: int) -> Check:
    """The open-files limit against the connections expected (one descriptor each)."""
    needed = expected + 256
    if soft >= needed:
        return Check("file limit", Status.OK, f"{soft} open files for {expected} connections")
    return Check(
        "file limit",
        Status.FAIL if soft < 4096 else Status.WARN,
        f"{soft} open files (hard {hard}) for {expected} expected connections",
        "raise it where the server starts: systemd LimitNOFILE=65535, Supervisor "
        "`minfds=65535` in [supervisord], or `ulimit -n 65535` before `overtone start`",
    )


def nginx_sites(root: Path = NGINX_ROOT) -> dict[str, str]:
    """The text of nginx's site files under ``root`` (unreadable ones are left out)."""
    sites: dict[str, str] = {}
    for pattern in _NGINX_FILES:
        for path in sorted(root.glob(pattern)):
            try:
                if path.is_file() and path.stat().st_size <= 1_048_576:
                    sites[str(path)] = path.read_text(errors="replace")
            except OSError:
                continue
    return sites


def _nginx_tls(port: str, sites: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The nginx files proxying to ``port``: those served with TLS, and the others.

    A file of location blocks (``--locations-only``) counts as served with TLS when a file
    with TLS includes it.
    """
    proxy = re.compile(rf"^\s*proxy_pass\s+https?://[^\s;]*:{re.escape(port)}\b", re.MULTILINE)
    served_with_tls = [text for text in sites.values() if _NGINX_TLS.search(text)]
    with_tls: list[str] = []
    without: list[str] = []
    for name, text in sites.items():
        if not proxy.search(text):
            continue
        include = re.compile(rf"^\s*include\s+\S*{re.escape(Path(name).name)}\s*;", re.MULTILINE)
        if _NGINX_TLS.search(text) or any(include.search(t) for t in served_with_tls):
            with_tls.append(name)
        else:
            without.append(name)
    return with_tls, without


def dashboard(env: Mapping[str, str], sites: Mapping[str, str]) -> list[Check]:
    """``OVERTONE_DASHBOARD_PASSWORD``: long enough, and sent over TLS in production.

    ``sites``: nginx's files (:func:`nginx_sites`), to tell whether nginx terminates TLS in
    front of overtone. Warnings only: the dashboard works either way.
    """
    password = _get(env, "OVERTONE_DASHBOARD_PASSWORD")
    if not password:
        return []
    checks: list[Check] = []
    if len(password) < MIN_DASHBOARD_PASSWORD:
        checks.append(
            Check(
                "dashboard password",
                Status.WARN,
                f"OVERTONE_DASHBOARD_PASSWORD has {len(password)} characters "
                f"(fewer than {MIN_DASHBOARD_PASSWORD})",
                "use a long random value: "
                "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`",
            )
        )
    else:
        checks.append(Check("dashboard password", Status.OK, f"{len(password)} characters"))
    if _get(env, "APP_ENV").lower() != "production":
        return checks
    port = _get(env, "REVERB_SERVER_PORT") or "8080"
    with_tls, without = _nginx_tls(port, sites)
    if _get(env, "OVERTONE_TLS_CERT"):
        checks.append(Check("dashboard over TLS", Status.OK, "overtone serves TLS itself"))
    elif with_tls:
        checks.append(Check("dashboard over TLS", Status.OK, f"nginx serves TLS: {with_tls[0]}"))
    else:
        seen = (
            f"{without[0]} proxies to port {port} without TLS"
            if without
            else f"no nginx site found that proxies to port {port} with TLS"
        )
        checks.append(
            Check(
                "dashboard over TLS",
                Status.WARN,
                f"the dashboard is on in production and TLS is not terminated by overtone; "
                f"{seen}: Basic authentication would send the password in clear text",
                "serve it through nginx with TLS (`overtone deploy nginx --ssl-cert ... "
                "--ssl-key ...`) or set OVERTONE_TLS_CERT/KEY; fine if a load balancer "
                "terminates TLS in front, or if the dashboard is only reached through `ssh -L`",
            )
        )
    return checks


def redis(env: Mapping[str, str]) -> list[Check]:
    """Highly available Redis settings that cannot work: a managed endpoint of the wrong
    kind, no TLS where the service requires it, too few sentinels (see docs/redis-ha.md)."""
    if _get(env, "REVERB_SCALING_ENABLED").lower() not in ("1", "true", "yes", "on"):
        return []
    checks: list[Check] = []
    url = _get(env, "REDIS_URL")
    cluster_nodes = _get(env, "OVERTONE_REDIS_CLUSTER_NODES")
    sentinels = [s for s in _get(env, "OVERTONE_REDIS_SENTINELS").split(",") if s.strip()]
    scheme = _get(env, "REDIS_SCHEME").lower()
    tls = url.startswith("rediss://") if url else scheme in ("tls", "rediss")
    host = (urlsplit(url).hostname or "") if url else _get(env, "REDIS_HOST")
    hosts = [h.strip().rpartition(":")[0] for h in cluster_nodes.split(",") if h.strip()]
    if not cluster_nodes and not sentinels:
        hosts = [host]
    if not cluster_nodes and host.startswith("clustercfg."):
        checks.append(
            Check(
                "Redis topology",
                Status.FAIL,
                f"{host} is the configuration endpoint of a cluster-mode Redis",
                f"set OVERTONE_REDIS_CLUSTER_NODES={host}:6379 (docs/redis-ha.md)",
            )
        )
    if not cluster_nodes and not sentinels and (host.startswith("replica.") or "-ro." in host):
        checks.append(
            Check(
                "Redis topology",
                Status.FAIL,
                f"{host} is a reader endpoint: replicas refuse writes",
                "use the primary endpoint (master.<name>...) in REDIS_URL or REDIS_HOST",
            )
        )
    managed = [h for h in hosts if h.endswith(".amazonaws.com")]
    if managed and not tls:
        memorydb = any(".memorydb." in h for h in managed)
        checks.append(
            Check(
                "Redis TLS",
                Status.FAIL if memorydb else Status.WARN,
                f"{managed[0]} without TLS"
                + (": MemoryDB always requires TLS" if memorydb else ""),
                "set REDIS_SCHEME=tls (or a rediss:// URL) when in-transit encryption is on",
            )
        )
    if sentinels and len(sentinels) < 3:
        checks.append(
            Check(
                "Redis Sentinel",
                Status.WARN,
                f"{len(sentinels)} sentinel(s) listed",
                "run and list at least three sentinels so a failover can reach a quorum "
                "while one of them is down",
            )
        )
    return checks


def hosted_features(env: Mapping[str, str]) -> list[Check]:
    """Authorized connections: on with its time limit named, or a time limit that does
    nothing because the feature is off."""
    timeout = _get(env, "OVERTONE_AUTHORIZATION_TIMEOUT")
    try:  # a value the server refuses is reported when the settings are loaded
        enabled = bool_value("", _get(env, "OVERTONE_AUTHORIZED_CONNECTIONS") or "false")
    except ConfigError:
        enabled = False
    if enabled:
        return [
            Check(
                "authorized connections",
                Status.OK,
                f"on: a connection that neither signs in nor joins a private or presence "
                f"channel within {timeout or '30'} s is closed with 4009",
            )
        ]
    if timeout:
        return [
            Check(
                "authorized connections",
                Status.WARN,
                f"OVERTONE_AUTHORIZATION_TIMEOUT={timeout} does nothing: "
                "OVERTONE_AUTHORIZED_CONNECTIONS is not true",
                "set OVERTONE_AUTHORIZED_CONNECTIONS=true, or remove the timeout",
            )
        ]
    return []
