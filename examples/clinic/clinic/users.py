"""Two hard-coded users and a signed login cookie: just enough identity for the demo."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

Role = Literal["doctor", "patient"]

COOKIE = "clinic_user"


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in person. ``id`` is what channels, presence and sign-in call them."""

    id: str
    name: str
    role: Role

    @property
    def is_doctor(self) -> bool:
        """Doctors may follow every patient and change appointments."""
        return self.role == "doctor"

    def public(self) -> dict[str, str]:
        """What other people's pages may see (presence ``user_info``, page data)."""
        return {"id": self.id, "name": self.name, "role": self.role}


USERS: dict[str, User] = {
    "d1": User("d1", "Dr. Ana Souza", "doctor"),
    "p1": User("p1", "João Lima", "patient"),
}
BY_ROLE: dict[str, User] = {user.role: user for user in USERS.values()}


class CookieSigner:
    """``user_id.hmac`` cookies: the browser can read them but cannot forge another user."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def _mac(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def sign(self, user: User) -> str:
        """The cookie value naming ``user``."""
        return f"{user.id}.{self._mac(user.id)}"

    def user(self, cookie: str | None) -> User | None:
        """The user a cookie names, or ``None`` when it is missing, forged or unknown."""
        if not cookie or "." not in cookie:
            return None
        user_id, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(user_id)):
            return None
        return USERS.get(user_id)
