"""What the sync and async broadcasters share: building requests and judging answers.

Contract: in fail-soft mode no method raises; each failure is reported once per minute
(see :mod:`.failsoft`) and the caller gets ``None``. In strict mode the same failure is
raised as a :class:`~overtone.broadcast.errors.BroadcastError` subclass.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from overtone.broadcast.config import BroadcastConfig
from overtone.broadcast.errors import (
    InvalidBroadcast,
    NoHistory,
    NotConfigured,
    ServerRejected,
    ServerUnreachable,
)
from overtone.broadcast.failsoft import Reporter, WarningLimiter
from overtone.broadcast.sdk import Json, SignedRequest, Signer, interpret


class Operations:
    """Signed requests for one configuration, and the fail-soft outcome of each step."""

    def __init__(
        self,
        config: BroadcastConfig,
        *,
        strict: bool | None,
        limiter: WarningLimiter | None,
        json_encoder: type[json.JSONEncoder] | None,
    ) -> None:
        self.config = config
        self.reporter = Reporter(config.strict if strict is None else strict, limiter)
        self.signer: Signer | None = None
        reason = config.disabled_reason
        if reason is None:
            try:
                self.signer = Signer(config, json_encoder)
            except (ValueError, TypeError) as error:
                reason = str(error)
        self.disabled_reason = reason

    def build(self, make: Callable[[Signer], SignedRequest]) -> SignedRequest | None:
        """The request ``make`` signs, or ``None`` after reporting why there is none."""
        if self.signer is None:
            self.reporter.fail(NotConfigured(self.disabled_reason or "not configured"))
            return None
        try:
            return make(self.signer)
        except (ValueError, TypeError) as error:
            self.reporter.fail(InvalidBroadcast(str(error)))
            return None

    def unreachable(self, cause: BaseException) -> None:
        """Report that the transport got no answer (raises from ``cause`` when strict)."""
        error = ServerUnreachable(self.config.server_url, cause)
        error.__cause__ = cause
        self.reporter.fail(error)

    def answered(self, request: SignedRequest, status: int, text: str) -> Json | None:
        """The answer's JSON object when 2xx, else ``None`` after reporting it."""
        try:
            document = interpret(self.config, request, status, text)
        except ServerRejected as error:
            self.reporter.fail(error)
            return None
        self.reporter.recovered(self.config.server_url)
        return document

    def position_of(self, channel: str, document: Json | None) -> Json | None:
        """The ``{"epoch", "offset"}`` of an ``info=position`` answer, or ``None``.

        A 2xx answer without a well-formed position (history off, or not overtone) is
        reported as :class:`NoHistory`.
        """
        if document is None:
            return None
        position = document.get("position")
        if isinstance(position, dict):
            epoch, offset = position.get("epoch"), position.get("offset")
            if isinstance(epoch, str) and type(offset) is int and offset >= 0:
                return {"epoch": epoch, "offset": offset}
        self.reporter.fail(NoHistory(self.config.server_url, channel))
        return None


class BroadcasterBase:
    """What the sync and async broadcasters share: their :class:`Operations` and state."""

    _ops: Operations

    @property
    def enabled(self) -> bool:
        """Whether broadcasts can be sent (credentials present and valid)."""
        return self._ops.signer is not None

    @property
    def disabled_reason(self) -> str | None:
        """Why broadcasting is off, naming the variable; ``None`` when it is on."""
        return self._ops.disabled_reason
