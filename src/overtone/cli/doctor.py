"""``overtone doctor``: a checklist of the usual misconfigurations, and a live probe.

Exit status 1 when any check fails, 0 otherwise (warnings included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
from collections.abc import Mapping
from typing import Any

import httpx
from redis.exceptions import RedisError

from overtone.cli.common import add_env_file
from overtone.cluster import redis_connect
from overtone.config import ConfigError, Scaling, load_settings, read_environment
from overtone.doctor import config_checks
from overtone.doctor.probe import Target, probe, probe_fallback
from overtone.doctor.report import Check, Status, failed, render


def register(commands: Any) -> None:
    """Add ``doctor`` to the sub-commands."""
    parser = commands.add_parser("doctor", help="check the configuration and probe the server")
    add_env_file(parser)
    parser.add_argument(
        "--url", help="public address to probe as a browser would, e.g. wss://example.com"
    )
    parser.add_argument(
        "--api-url",
        help="where the broadcaster posts (default: REVERB_SCHEME://REVERB_HOST:REVERB_PORT)",
    )
    parser.add_argument(
        "--connections", type=int, default=10_000, help="connections to plan the file limit for"
    )
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network step")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the checklist; 1 if anything failed."""
    try:
        env = read_environment(os.environ, args.env_file)
    except ConfigError as exc:
        print(f"overtone: {exc}", file=sys.stderr)
        return 2
    checks = asyncio.run(_checks(env, args))
    print(render(checks))
    return 1 if failed(checks) else 0


async def _checks(env: Mapping[str, str], args: argparse.Namespace) -> list[Check]:
    checks: list[Check] = []
    try:
        settings = load_settings(env)
        checks.append(Check("configuration", Status.OK, "every variable is valid"))
    except ConfigError as exc:
        checks.append(Check("configuration", Status.FAIL, str(exc)))
        settings = None
    checks += config_checks.credentials(env)
    checks += config_checks.addresses(env)
    checks += config_checks.redis(env)
    checks += config_checks.dashboard(env, config_checks.nginx_sites())
    checks += config_checks.hosted_features(env)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    checks.append(config_checks.file_limit(soft, hard, args.connections))
    if settings is not None:
        checks.append(
            await _server_running(settings.scheme, settings.host, settings.port, settings.path)
        )
        if settings.scaling is not None:
            checks.append(await _redis(settings.scaling))
    if args.url:
        target = _target(env, args)
        checks += await probe(target)
        if settings is None or settings.http_fallback:
            path = settings.http_fallback_path if settings is not None else "/pusher"
            checks.append(await probe_fallback(target, path))
    return checks


def _target(env: Mapping[str, str], args: argparse.Namespace) -> Target:
    scheme = (env.get("REVERB_SCHEME") or "https").strip()
    host = (env.get("REVERB_HOST") or "localhost").strip()
    port = (env.get("REVERB_PORT") or ("443" if scheme == "https" else "80")).strip()
    api_url = args.api_url or f"{scheme}://{host}:{port}{env.get('REVERB_SERVER_PATH', '')}"
    return Target(
        ws_url=args.url,
        api_url=api_url,
        app_id=env.get("REVERB_APP_ID", ""),
        key=env.get("REVERB_APP_KEY", ""),
        secret=env.get("REVERB_APP_SECRET", ""),
        verify_tls=not args.insecure,
        timeout=args.timeout,
    )


async def _server_running(scheme: str, host: str, port: int, path: str) -> Check:
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"{scheme}://{local}:{port}{path}/up"
    try:
        # Our own server on this machine: its certificate names the public host, not 127.0.0.1.
        async with httpx.AsyncClient(timeout=2.0, verify=False) as http:
            answer = await http.get(url)
    except httpx.ConnectError:
        return Check(
            "local server",
            Status.WARN,
            f"nothing listens on {local}:{port}",
            "start it: `overtone start` (or through Supervisor/systemd)",
        )
    except httpx.HTTPError as exc:
        return Check("local server", Status.FAIL, f"{url}: {exc}")
    if answer.status_code == 200 and answer.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return Check("local server", Status.OK, f"answering on {local}:{port}")
    return Check(
        "local server",
        Status.FAIL,
        f"port {port} is used by something else (HTTP {answer.status_code} on /up)",
        "choose another REVERB_SERVER_PORT or stop the other program",
    )


async def _redis(scaling: Scaling) -> Check:
    """The primary the broker would use: found, reachable, writable."""
    shown = redis_connect.describe(scaling)
    try:
        primary = await asyncio.wait_for(redis_connect.connect(scaling), 5.0)
    except (RedisError, OSError, TimeoutError) as exc:
        hint = "check REDIS_URL/REDIS_HOST, the password and the security group"
        if scaling.sentinels:
            hint = "check OVERTONE_REDIS_SENTINELS, OVERTONE_REDIS_SENTINEL_MASTER and passwords"
        elif scaling.cluster_nodes:
            hint = "check OVERTONE_REDIS_CLUSTER_NODES, TLS (REDIS_SCHEME) and the password"
        return Check("Redis", Status.FAIL, f"{shown}: no primary reachable: {exc}", hint)
    try:
        await primary.client.ping()
    except (RedisError, OSError) as exc:
        return Check("Redis", Status.FAIL, f"{shown}: primary {primary.address}: {exc}")
    finally:
        await primary.aclose()
    mode = ", sharded pub/sub" if primary.sharded else ""
    return Check("Redis", Status.OK, f"{shown}: primary {primary.address} answers PING{mode}")
