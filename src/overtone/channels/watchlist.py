"""Who watches whom: the reverse index behind watchlist online/offline events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

S = TypeVar("S")


class Watchlists(Generic[S]):
    """Maps a watched user id to the connections whose sign-in watchlist names it."""

    __slots__ = ("_watchers",)

    def __init__(self) -> None:
        self._watchers: dict[str, set[S]] = {}

    def watch(self, watcher: S, user_ids: Iterable[str]) -> None:
        """Register ``watcher`` for every id in ``user_ids``."""
        for user_id in user_ids:
            self._watchers.setdefault(user_id, set()).add(watcher)

    def unwatch(self, watcher: S, user_ids: Iterable[str]) -> None:
        """Undo :meth:`watch` (idempotent)."""
        for user_id in user_ids:
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[user_id]

    def watchers_of(self, user_id: str) -> set[S]:
        """The connections watching ``user_id`` (do not mutate)."""
        return self._watchers.get(user_id, set())
