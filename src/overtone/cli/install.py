"""``overtone install``: write the Reverb variables into a ``.env``, like ``reverb:install``.

Contract:

- Variables handled (:data:`VARIABLES`): ``BROADCAST_CONNECTION``, ``REVERB_APP_ID`` (random,
  six digits: the PyPI ``pusher`` SDK needs a numeric id), ``REVERB_APP_KEY`` and
  ``REVERB_APP_SECRET`` (random lower-case alphanumerics from :mod:`secrets`), the public
  address ``REVERB_HOST``/``REVERB_PORT``/``REVERB_SCHEME`` (``--host``/``--port``/``--scheme``),
  the bind address ``REVERB_SERVER_HOST``/``REVERB_SERVER_PORT`` and Vite's mirrors
  ``VITE_REVERB_*="${REVERB_*}"``.
- A variable with a value is kept unless ``--force``. A variable present with an empty or
  ``null`` value counts as unset (as for ``overtone start``) and is filled in place. Missing
  variables are appended in one block at the end.
- Every other byte of the file stays as it was: comments, blank lines, order, quoting, ``export``
  prefixes, line endings. Lines are edited directly; python-dotenv's ``set_key`` is not used
  because it rewrites the quoting (``KEY='value'``, and single quotes stop Laravel and Vite from
  expanding ``${REVERB_APP_KEY}``) and drops blank lines before the edited binding. Its parser
  is used to find each binding, including multi-line quoted values.
- A symlinked ``.env`` is edited through the link; the write is atomic and keeps the mode.
- Output: one line per variable (``added``, ``filled``, ``replaced`` or ``kept``) on stdout with
  the key and secret masked; warnings on stderr. Exit status 0, or 2 when the file cannot be
  read or written.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import string
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import Binding, parse_stream

SECRET_ALPHABET = string.ascii_lowercase + string.digits
KEY_LENGTH = 20
SECRET_LENGTH = 32

VARIABLES = (
    "BROADCAST_CONNECTION",
    "REVERB_APP_ID",
    "REVERB_APP_KEY",
    "REVERB_APP_SECRET",
    "REVERB_HOST",
    "REVERB_PORT",
    "REVERB_SCHEME",
    "REVERB_SERVER_HOST",
    "REVERB_SERVER_PORT",
    "VITE_REVERB_APP_KEY",
    "VITE_REVERB_HOST",
    "VITE_REVERB_PORT",
    "VITE_REVERB_SCHEME",
)
"""Every variable ``install`` manages, in the order of the appended block."""

_VITE_FIRST = "VITE_REVERB_APP_KEY"
_BINDING = re.compile(
    r"""(?P<lead>\s*)(?P<export>export[ \t]+)?[^=\s]+[ \t]*=[ \t]*
    (?P<value>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^\r\n]*?)
    (?P<comment>[ \t]+\#[^\r\n]*)?(?P<end>\r?\n)?\Z""",
    re.DOTALL | re.VERBOSE,
)


def random_token(length: int) -> str:
    """A random string of lower-case letters and digits (Reverb's alphabet)."""
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))


def new_values(host: str, port: int, scheme: str) -> dict[str, str]:
    """Fresh ``.env`` lines' right-hand sides (already quoted) for every variable."""
    return {
        "BROADCAST_CONNECTION": "reverb",
        "REVERB_APP_ID": str(100_000 + secrets.randbelow(900_000)),
        "REVERB_APP_KEY": random_token(KEY_LENGTH),
        "REVERB_APP_SECRET": random_token(SECRET_LENGTH),
        "REVERB_HOST": f'"{_escape(host)}"',
        "REVERB_PORT": str(port),
        "REVERB_SCHEME": scheme,
        "REVERB_SERVER_HOST": "0.0.0.0",
        "REVERB_SERVER_PORT": "8080",
        "VITE_REVERB_APP_KEY": '"${REVERB_APP_KEY}"',
        "VITE_REVERB_HOST": '"${REVERB_HOST}"',
        "VITE_REVERB_PORT": '"${REVERB_PORT}"',
        "VITE_REVERB_SCHEME": '"${REVERB_SCHEME}"',
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _unset(value: str | None) -> bool:
    return value is None or value.strip() == "" or value.strip().lower() in ("null", "(null)")


def mask(name: str, shown: str) -> str:
    """``shown`` (a raw right-hand side) with secrets hidden: the key keeps 4 characters."""
    bare = shown.strip("\"'")
    if name == "REVERB_APP_SECRET" and bare:
        return "*" * 8
    if name == "REVERB_APP_KEY" and bare:
        return f"{bare[:4]}{'*' * 8}"
    return shown


@dataclass(frozen=True, slots=True)
class Change:
    """What happened to one variable: ``added``, ``filled``, ``replaced`` or ``kept``."""

    name: str
    action: str
    shown: str


def _raw_value(binding: Binding) -> str:
    match = _BINDING.match(binding.original.string)
    return match["value"] if match else (binding.value or "")


def _rewrite(binding: Binding, name: str, value: str, newline: str) -> str:
    """The binding's text with a new value; leading blank lines, ``export``, comment kept."""
    match = _BINDING.match(binding.original.string)
    if match is None:
        return f"{name}={value}{newline}"
    return (
        f"{match['lead']}{match['export'] or ''}{name}={value}"
        f"{match['comment'] or ''}{match['end'] or ''}"
    )


def plan(
    text: str, fresh: dict[str, str], force: bool = False
) -> tuple[str, list[Change], list[str]]:
    """The new file text, what happened to each variable, and warnings.

    Pure: ``fresh`` holds the right-hand side to write for each of :data:`VARIABLES`.
    """
    bindings = list(parse_stream(io.StringIO(text)))
    newline = "\r\n" if "\r\n" in text else "\n"
    last: dict[str, int] = {}
    for index, binding in enumerate(bindings):
        if binding.key is not None:
            last[binding.key] = index
    pieces = [b.original.string for b in bindings]
    changes: list[Change] = []
    missing: list[str] = []
    warnings: list[str] = []
    for name in VARIABLES:
        if name not in last:
            missing.append(name)
            changes.append(Change(name, "added", fresh[name]))
            continue
        index = last[name]
        binding = bindings[index]
        if force or _unset(binding.value):
            pieces[index] = _rewrite(binding, name, fresh[name], newline)
            action = "replaced" if force and not _unset(binding.value) else "filled"
            changes.append(Change(name, action, fresh[name]))
        else:
            changes.append(Change(name, "kept", _raw_value(binding)))
    current = {c.name: c.shown.strip("\"'") for c in changes}
    if current["BROADCAST_CONNECTION"] != "reverb":
        warnings.append(
            f"BROADCAST_CONNECTION={current['BROADCAST_CONNECTION']} kept: Laravel will not "
            "broadcast through overtone until it is 'reverb': edit that line (--force would also "
            "replace the credentials)"
        )
    result = "".join(pieces)
    if missing:
        if result and not result.endswith(("\n", "\r")):
            result += newline
        block: list[str] = []
        for name in missing:
            if name == _VITE_FIRST and block:
                block.append("")
            block.append(f"{name}={fresh[name]}")
        separate = result.strip() and not result.endswith(newline * 2)
        result += (newline if separate else "") + newline.join(block) + newline
    return result, changes, warnings


def _write(path: Path, text: str) -> None:
    """Replace ``path``'s content atomically, keeping its mode and (when allowed) owner.

    A symlink is followed (the link stays). When the directory is not writable but the file
    is, the file is rewritten in place instead.
    """
    target = path.resolve() if path.is_symlink() else path
    existing = target.stat() if target.exists() else None
    try:
        fd, temp = tempfile.mkstemp(prefix=".env.", dir=target.parent)
    except PermissionError:
        if existing is None:
            raise
        with target.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        if existing is not None:
            os.chmod(temp, existing.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(temp, existing.st_uid, existing.st_gid)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    """Handle ``overtone install``; return the exit status."""
    path = Path(args.env_file)
    scheme = args.scheme or ("https" if args.port == 443 else "http")
    port = args.port or (443 if scheme == "https" else 8080)
    existed = path.exists()
    try:
        text = path.read_bytes().decode("utf-8") if existed else ""
    except (OSError, UnicodeDecodeError) as exc:
        print(f"overtone install: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    fresh = new_values(args.host or "localhost", port, scheme)
    new_text, changes, warnings = plan(text, fresh, args.force)
    requested = {
        "REVERB_HOST": args.host,
        "REVERB_PORT": str(args.port) if args.port else None,
        "REVERB_SCHEME": args.scheme,
    }
    for change in changes:
        wanted = requested.get(change.name)
        if change.action == "kept" and wanted is not None and change.shown.strip('"') != wanted:
            warnings.append(f"{change.name} kept as {change.shown}, not {wanted} (use --force)")
    if new_text != text:
        try:
            _write(path, new_text)
        except OSError as exc:
            print(f"overtone install: cannot write {path}: {exc}", file=sys.stderr)
            return 2
    state = "unchanged" if new_text == text else "updated" if existed else "created"
    print(f"{path}: {state}")
    for change in changes:
        print(f"  {change.action:<9}{change.name}={mask(change.name, change.shown)}")
    for warning in warnings:
        print(f"overtone install: warning: {warning}", file=sys.stderr)
    return 0


def _scheme(value: str) -> str:
    if value not in ("http", "https"):
        raise argparse.ArgumentTypeError("must be http or https")
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 < port < 65_536:
        raise argparse.ArgumentTypeError(f"{port} is not a port number")
    return port


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``install`` to the ``overtone`` sub-commands."""
    install = commands.add_parser(
        "install",
        help="write REVERB_* credentials and addresses into .env (like reverb:install)",
        description=(
            "Write REVERB_APP_ID/KEY/SECRET, the public address, the bind address, "
            "BROADCAST_CONNECTION and the VITE_REVERB_* mirrors into .env. Existing values "
            "are kept unless --force; every other line stays as it is."
        ),
    )
    install.add_argument("--env-file", default=".env", help="file to edit (default ./.env)")
    install.add_argument(
        "--host", help="public host name clients use (REVERB_HOST, default localhost)"
    )
    install.add_argument(
        "--port", type=_port, help="public port (REVERB_PORT, default 8080, or 443 for https)"
    )
    install.add_argument(
        "--scheme", type=_scheme, help="http or https (REVERB_SCHEME, default http)"
    )
    install.add_argument(
        "--force", action="store_true", help="replace existing values (new credentials too)"
    )
    install.set_defaults(handler=run)
