"""Why a broadcast or an authorization could not be carried out.

Each error's ``str()`` is the one-line warning logged in fail-soft mode (and the message
raised in strict mode); ``warning_key`` groups messages that the rate limiter treats as
"the same warning" (one per minute), so a flood of failures logs one line.
"""

from __future__ import annotations


class BroadcastError(Exception):
    """Base class: the operation did not happen; ``str(error)`` says why in one line."""

    def __init__(self, message: str, warning_key: str | None = None) -> None:
        super().__init__(message)
        self.warning_key = warning_key or message


class NotConfigured(BroadcastError):
    """Realtime is off: credentials are missing or a ``REVERB_*`` value is malformed."""

    def __init__(self, reason: str, subject: str = "realtime broadcasting") -> None:
        super().__init__(f"{subject} is off: {reason}", f"off:{reason}")
        self.reason = reason


class ServerUnreachable(BroadcastError):
    """No HTTP answer from overtone (refused, timed out, DNS, TLS...)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        root = root_cause(cause)
        detail = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
        super().__init__(
            f"overtone at {url} is unreachable ({detail}); broadcasts are dropped until it answers",
            f"unreachable:{url}",
        )
        self.url = url


class ServerRejected(BroadcastError):
    """overtone answered, but not with a 2xx JSON document."""

    def __init__(self, url: str, method: str, path: str, status: int, body: str) -> None:
        excerpt = " ".join(body.split())[:200]
        super().__init__(
            f"overtone at {url} answered {method} {path} with {status}: {excerpt}; "
            "the request was dropped",
            f"rejected:{url}:{status}",
        )
        self.url = url
        self.status = status
        self.body = body


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception behind ``error`` (e.g. ``ConnectionRefusedError``).

    HTTP libraries wrap socket errors in messages that repeat the whole signed URL; the
    root is short and says what happened.
    """
    seen = {id(error)}
    while True:
        reason = getattr(error, "reason", None)
        first = error.args[0] if error.args else None
        inner = next(
            (
                e
                for e in (error.__cause__, reason, first, error.__context__)
                if isinstance(e, BaseException) and id(e) not in seen
            ),
            None,
        )
        if inner is None:
            return error
        seen.add(id(inner))
        error = inner


class NoHistory(BroadcastError):
    """The server answered without a stream position: it keeps no history for the channel.

    History is off for the app (``OVERTONE_HISTORY_ENABLED=false``) or the server is not
    overtone (e.g. Reverb). Pages then start without a position, as before.
    """

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(
            f"overtone at {url} gave no position for {channel} (history is off, or the "
            "server is not overtone); pages start without one",
            f"nohistory:{url}",
        )
        self.url = url
        self.channel = channel


class InvalidBroadcast(BroadcastError, ValueError):
    """The arguments cannot be sent (bad channel or event name, too much data...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"broadcast dropped: {reason}", f"invalid:{reason}")
        self.reason = reason


class AuthRequestError(Exception):
    """An authorization request that is malformed (400) or too large (413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
