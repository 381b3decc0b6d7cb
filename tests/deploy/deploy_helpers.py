"""Shared pieces of the deploy tests: the CLI in-process, real nginx and TLS certificates."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overtone.cli import deploy, install
from support.servers import scaled


@dataclass
class CliResult:
    """Exit status and output of one in-process command."""

    code: int
    out: str
    err: str


def cli(*argv: str) -> CliResult:
    """Run ``overtone install|deploy ...`` in-process through the modules' ``register``."""
    parser = argparse.ArgumentParser(prog="overtone")
    commands = parser.add_subparsers(dest="command", required=True)
    install.register(commands)
    deploy.register(commands)
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.handler(args)
    return CliResult(code, out.getvalue(), err.getvalue())


PACKAGES = {"nginx": "nginx", "supervisord": "supervisor", "supervisorctl": "supervisor"}


def binary(name: str) -> str:
    """The absolute path of ``name`` (also in /usr/sbin); skip the test when it is missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        package = PACKAGES.get(name, name)
        pytest.skip(f"{name} is not installed (Debian package {package})")
    return found


def run(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a short command to the end (bounded), capturing its output."""
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=scaled(timeout), check=False
    )


def clean_env() -> dict[str, str]:
    """This process's environment without REVERB_*/OVERTONE_* (the .env must do the work)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))}


def until(label: str, probe: Callable[[], object], timeout: float = 15) -> object:
    """Poll ``probe`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            value = probe()
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {label}")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (``cert.pem``, ``key.pem``).

    Made with the ``cryptography`` package (installed with the dev dependencies), else with
    the ``openssl`` command.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509  # noqa: PLC0415 - optional, see the docstring
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import NameOID  # noqa: PLC0415
    except ImportError:
        openssl = binary("openssl")
        made = run(
            openssl,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        )
        assert made.returncode == 0, made.stderr
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def wait_port(port: int, timeout: float = 10) -> None:
    """Wait until 127.0.0.1:``port`` accepts TCP connections."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def nginx_conf(prefix: Path, include: Path, server: str | None = None) -> Path:
    """A complete nginx.conf with every path inside ``prefix`` that includes ``include``.

    With ``server`` (directives of a server block), ``include`` goes inside that server block,
    as location blocks do.
    """
    user = "user root;\n" if os.geteuid() == 0 else ""
    body = f"include {include};"
    if server is not None:
        body = f"server {{\n{server}\n{body}\n}}"
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp}\n    {body}\n}}\n"
    )
    return conf


def nginx_test(conf: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``conf`` with its prefix and error log in the conf's directory."""
    prefix = conf.parent
    error_log = str(prefix / "error.log")
    return run(binary("nginx"), "-t", "-p", str(prefix), "-e", error_log, "-c", str(conf))


class Nginx:
    """A real nginx master running ``conf`` in the foreground; stopped by PID."""

    def __init__(self, conf: Path, port: int) -> None:
        prefix = conf.parent
        self.prefix = prefix
        self.process = subprocess.Popen(
            [binary("nginx"), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port)
        except AssertionError:
            self.stop()
            raise AssertionError(f"nginx did not start:\n{self.error_log()}") from None

    def error_log(self) -> str:
        """nginx's error log so far."""
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> str:
        """nginx's access log so far."""
        path = self.prefix / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGTERM to the master's PID), bounded; SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tls_context(cert: Path) -> ssl.SSLContext:
    """A client context trusting only ``cert`` (hostname checked)."""
    return ssl.create_default_context(cafile=str(cert))


Answer = tuple[int, dict[str, str], bytes]


def https(port: int, cert: Path, method: str, target: str, body: bytes | None = None) -> Answer:
    """One HTTPS request to 127.0.0.1:``port``; (status, lower-cased headers, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(cert), timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, target, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def websocket_handshake(port: int, cert: Path, target: str) -> tuple[int, bytes]:
    """A browser-like WebSocket upgrade through TLS; (status, body: empty for a 101)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(cert), timeout=5)
    try:
        conn.request(
            "GET",
            target,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        )
        answer = conn.getresponse()
        return answer.status, b"" if answer.status == 101 else answer.read()
    finally:
        conn.close()


def start_nginx(directory: Path, config: str, port: int, server: str | None = None) -> Nginx:
    """nginx on ``port`` with ``config`` (inside a server block with the directives
    ``server``, when given), checked with ``nginx -t`` first; every path in ``directory``."""
    generated = directory / "generated.conf"
    generated.write_text(config)
    conf = nginx_conf(directory, generated, server)
    checked = nginx_test(conf)
    assert checked.returncode == 0, f"{checked.stderr}\n{config}"
    return Nginx(conf, port)
