"""``overtone top``: the dashboard's overview in a terminal, for operators on SSH.

With a dashboard password (``--password`` or ``OVERTONE_DASHBOARD_PASSWORD``, from the
environment or the ``.env``) it polls ``{url}/dashboard/api/overview`` (Basic auth, user
``overtone``): cluster-wide numbers, rates, the nodes and a sparkline of the last minute. Without
one, or when the server's dashboard is off (404), it scrapes ``{url}/metrics`` (bearer
``OVERTONE_METRICS_TOKEN`` when set) and computes rates from the counters of two scrapes.

The frame is redrawn in place every ``--interval`` seconds; ``--once`` prints one frame (with
``/metrics``, after two scrapes ``--interval`` apart) and exits.

Exit status: 0 after ``--once`` or Ctrl-C; 1 when the server cannot be reached or refuses
(wrong password, too many failed logins, missing metrics token, unknown ``--app``); 2 for a bad
flag or ``.env``.

Frames are drawn by :mod:`overtone.cli.top_frames` and scrapes computed by
:mod:`overtone.cli.top_metrics`, both pure; this module polls and runs the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from overtone.cli.common import add_env_file
from overtone.cli.top_frames import SPARK_SECONDS, render, render_metrics
from overtone.cli.top_metrics import MetricsView, Scrape, TopError, metrics_view, parse_metrics
from overtone.config import ConfigError, load_settings, read_environment

USER = "overtone"
CLEAR = "\x1b[H\x1b[2J"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass
class Target:
    """Where and how to poll."""

    url: str
    password: str | None
    token: str | None
    verify: bool
    app: str | None


class Poller:
    """Fetches the overview (or scrapes ``/metrics``) and produces frames."""

    def __init__(self, target: Target, http: httpx.Client) -> None:
        self.target = target
        self.http = http
        self.use_dashboard = target.password is not None
        self.notice = ""
        self.previous: Scrape | None = None
        self.recent: dict[str, dict[str, deque[float | None]]] = {}

    @property
    def overview_url(self) -> str:
        return f"{self.target.url}/dashboard/api/overview"

    @property
    def metrics_url(self) -> str:
        return f"{self.target.url}/metrics"

    def _get(self, url: str, **options: Any) -> httpx.Response:
        try:
            return self.http.get(url, **options)
        except httpx.ConnectError as exc:
            raise TopError(f"cannot reach {url}: {exc or 'connection refused'}") from None
        except httpx.TimeoutException:
            raise TopError(f"{url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise TopError(f"{url}: {exc}") from None

    def overview(self) -> dict[str, Any] | None:
        """The overview document; ``None`` when the dashboard is off (switches to metrics)."""
        assert self.target.password is not None
        answer = self._get(self.overview_url, auth=(USER, self.target.password))
        if answer.status_code == 404:
            self.use_dashboard = False
            self.notice = (
                "the dashboard is off on this server (404; it needs OVERTONE_DASHBOARD_PASSWORD "
                "where overtone runs): showing /metrics instead"
            )
            return None
        if answer.status_code == 401:
            raise TopError(
                f"{self.overview_url}: 401, wrong dashboard password (user 'overtone'; "
                "--password or OVERTONE_DASHBOARD_PASSWORD must match the server's)"
            )
        if answer.status_code == 429:
            wait = answer.headers.get("retry-after", "60")
            raise TopError(
                f"{self.overview_url}: 429, too many failed logins from this address; "
                f"retry in {wait} s with the right password"
            )
        if answer.status_code != 200:
            raise TopError(f"{self.overview_url}: HTTP {answer.status_code}")
        try:
            document = answer.json()
        except ValueError:
            raise TopError(f"{self.overview_url} did not answer JSON (is it overtone?)") from None
        if not isinstance(document, dict):
            raise TopError(f"{self.overview_url}: unexpected answer")
        return document

    def scrape(self) -> Scrape:
        """One ``/metrics`` scrape."""
        headers = {"Authorization": f"Bearer {self.target.token}"} if self.target.token else {}
        answer = self._get(self.metrics_url, headers=headers)
        if answer.status_code == 401:
            have = "is wrong" if self.target.token else "is not set here"
            raise TopError(
                f"{self.metrics_url}: 401, the server needs its metrics token "
                f"(OVERTONE_METRICS_TOKEN {have})"
            )
        if answer.status_code == 404:
            raise TopError(
                f"{self.metrics_url}: 404; not an overtone address, or a proxy that does not "
                "pass /metrics: run `overtone top` on the server itself (or set "
                "OVERTONE_DASHBOARD_PASSWORD to use the dashboard)"
            )
        if answer.status_code != 200:
            raise TopError(f"{self.metrics_url}: HTTP {answer.status_code}")
        return parse_metrics(answer.text, time.monotonic())

    def _remember(self, view: MetricsView) -> None:
        samples = max(1, round(SPARK_SECONDS / max(view.seconds, 0.1)))
        for app, rates in view.rates.items():
            kept = self.recent.setdefault(app, {})
            for key, value in rates.items():
                kept.setdefault(key, deque(maxlen=samples)).append(value)
        view.recent = {
            app: {k: list(v) for k, v in keys.items()} for app, keys in self.recent.items()
        }

    def frame(self, wait: Callable[[float], None], interval: float) -> str:
        """The next frame; with metrics, the first call scrapes twice ``interval`` apart."""
        if self.use_dashboard:
            document = self.overview()
            if document is not None:
                self._check_app(str(a.get("id")) for a in document.get("apps") or ())
                return render(document, self.target.app, self.overview_url)
        if self.previous is None:
            self.previous = self.scrape()
            self._check_app(self.previous.apps)
            wait(interval)
        current = self.scrape()
        view = metrics_view(self.previous, current)
        self.previous = current
        self._remember(view)
        text = render_metrics(view, self.target.app, self.metrics_url)
        return f"{self.notice}\n{text}" if self.notice else text

    def _check_app(self, apps: Iterable[str]) -> None:
        known = sorted(apps)
        if self.target.app is not None and known and self.target.app not in known:
            raise TopError(f"no app {self.target.app} on this server (apps: {', '.join(known)})")


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{seconds:g} must be between 0.1 and 3600 seconds")
    return seconds


def register(commands: Any) -> None:
    """Add ``top`` to the sub-commands."""
    parser = commands.add_parser(
        "top",
        help="live overview in the terminal (the dashboard's, or /metrics)",
        description=(
            "Live overview of a running server in the terminal. Exit status: 0 after --once "
            "or Ctrl-C, 1 when the server cannot be reached or refuses, 2 for bad flags."
        ),
    )
    add_env_file(parser)
    parser.add_argument(
        "--url",
        help="the server's base address, e.g. http://127.0.0.1:8080 or https://ws.example.com "
        "(default: REVERB_SERVER_HOST/PORT/PATH as `overtone start` reads them)",
    )
    parser.add_argument(
        "--password",
        help="dashboard password (default OVERTONE_DASHBOARD_PASSWORD); without one, /metrics",
    )
    parser.add_argument(
        "--interval", type=_interval, default=1.0, help="seconds between frames (1)"
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--app", help="show only this app id")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.set_defaults(handler=run)


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """The URL and credentials from the flags, the environment and the ``.env``."""
    try:
        env = read_environment(environ, args.env_file)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    verify = not args.insecure
    url = args.url
    if not url:
        try:
            settings = load_settings(env)
        except ConfigError as exc:
            raise ValueError(f"configuration error: {exc}") from None
        host = settings.host
        if host in ("", "0.0.0.0", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"{settings.scheme}://{host}:{settings.port}{settings.path}"
        verify = False  # our own server: its certificate names the public host, not loopback
    elif "://" not in url:
        url = f"http://{url}"
    password = args.password or (env.get("OVERTONE_DASHBOARD_PASSWORD") or "").strip() or None
    token = (env.get("OVERTONE_METRICS_TOKEN") or "").strip() or None
    return Target(url.rstrip("/"), password, token, verify, args.app)


def run(args: argparse.Namespace) -> int:
    """Show frames until Ctrl-C (or one with ``--once``); return the exit status."""
    try:
        where = target(args, os.environ)
    except ValueError as exc:
        print(f"overtone top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    timeout = httpx.Timeout(max(2.0, min(args.interval, 10.0)), connect=3.0)
    try:
        with httpx.Client(timeout=timeout, verify=where.verify) as http:
            return _loop(Poller(where, http), args.interval, args.once)
    except KeyboardInterrupt:
        return EXIT_OK


def _loop(poller: Poller, interval: float, once: bool) -> int:
    try:
        text = poller.frame(time.sleep, interval)
    except TopError as exc:
        print(f"overtone top: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if poller.notice:
        print(f"overtone top: {poller.notice}", file=sys.stderr)
    if once:
        sys.stdout.write(text)
        return EXIT_OK
    while True:
        sys.stdout.write(CLEAR + text)
        sys.stdout.flush()
        time.sleep(interval)
        try:
            text = poller.frame(time.sleep, interval)
        except TopError as exc:  # a restart or a blip: keep polling, say so
            text = f"overtone top: {exc} (retrying every {interval:g} s)\n"
