"""Authorized connections (hosted Pusher's feature of that name). Sans-I/O.

With :attr:`~overtone.apps.App.authorized_connections` on, a connection is *authorized*
once it signs in or subscribes with a valid signature to a private, encrypted or presence
channel. One that is not within :attr:`~overtone.apps.App.authorization_timeout` seconds
of connecting is closed with 4009 (found by the hub's tick, so up to one tick late).
Only authorized connections count against ``max_connections``, cluster-wide: a connection
is refused when the authorized ones already fill the quota, and one that becomes
authorized when they do is closed with 4004.
"""

from __future__ import annotations

from overtone.hub_state import HubState
from overtone.protocol import errors
from overtone.protocol.errors import PusherError
from overtone.session import Session


class HubAuthorization(HubState):
    """Which connections are authorized, and the deadline of those that are not."""

    def _await_authorization(self, session: Session, now: float) -> None:
        """A new connection: authorized at once unless the app requires authorization."""
        if self.app.authorized_connections:
            session.authorized = False
            self.unauthorized.append((now + self.app.authorization_timeout, session))

    def _authorize(self, session: Session) -> PusherError | None:
        """``session`` proved who it is (signed in, or a signed subscription): count it;
        or, when the authorized connections already fill the quota, the error to close it
        with."""
        if session.authorized:
            return None
        limit = self.app.max_connections
        if limit is not None and self.authorized_count() >= limit:
            return errors.OVER_QUOTA
        session.authorized = True
        self.authorized += 1
        if self.emit is not None:
            self.emit({"t": "auth", "d": 1})
        return None

    def _forget_authorized(self, session: Session) -> None:
        """``session`` is gone: it no longer counts as an authorized connection."""
        if self.app.authorized_connections and session.authorized:
            self.authorized -= 1
            if self.emit is not None:
                self.emit({"t": "auth", "d": -1})

    def authorized_count(self) -> int:
        """Authorized connections to this app in the whole cluster (only counted while the
        app requires authorization)."""
        return self.authorized + self.remote.authorized

    def _unauthorized_at(self, now: float) -> list[Session]:
        """Open connections still unauthorized at their deadline (the hub closes them
        with 4009), forgotten here."""
        waiting = self.unauthorized
        late: list[Session] = []
        while waiting and waiting[0][0] <= now:
            _, session = waiting.popleft()
            if not session.closed and not session.authorized:
                late.append(session)
        return late
