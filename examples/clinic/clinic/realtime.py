"""Everything realtime in one place: settings, channel rules and the names pages listen to.

The channel rules are the app's ``routes/channels.php``:

- ``private-patient.{patient_id}``: appointment updates; that patient, or any doctor;
- ``presence-consultation.{room_id}``: the room's doctor and patient, with their names as
  presence ``user_info``; pages whisper ``client-typing`` on it and the app broadcasts chat;
- user sign-in (``/broadcasting/user-auth``): every signed-in user, for ``send_to_user``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from overtone.broadcast import BroadcastConfig, ChannelRegistry

from .store import Store
from .users import User

logger = logging.getLogger("clinic")

APPOINTMENT_STATUS = "appointment.status"
CHAT_MESSAGE = "chat.message"
NOTIFICATION = "notification"


def patient_channel(patient_id: str) -> str:
    """Where a patient's appointment updates are broadcast."""
    return f"private-patient.{patient_id}"


def room_channel(room_id: str) -> str:
    """The presence channel of a consultation room."""
    return f"presence-consultation.{room_id}"


def user_channel(user_id: str) -> str:
    """Where ``send_to_user`` reaches a signed-in user (pusher-js subscribes it after sign-in)."""
    return f"#server-to-user-{user_id}"


@dataclass(frozen=True, slots=True)
class Settings:
    """What the app reads from the environment and the optional ``.env``.

    ``CLINIC_ENV_FILE`` names the ``.env`` (default ``.env`` in the working directory, the
    same file ``overtone start`` reads); process variables win over the file.
    """

    environ: Mapping[str, str]
    env_file: Path
    secret_key: str
    broadcast: BroadcastConfig

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings (never raises: realtime is simply off when unconfigured)."""
        environ = dict(os.environ if environ is None else environ)
        env_file = Path(environ.get("CLINIC_ENV_FILE") or ".env")
        values: dict[str, Any] = dict(dotenv_values(env_file)) if env_file.is_file() else {}
        values.update(environ)
        secret = values.get("CLINIC_SECRET_KEY")
        if not secret:
            logger.warning("CLINIC_SECRET_KEY is not set: sign-ins last until a restart")
            secret = secrets.token_hex(32)
        broadcast = BroadcastConfig.from_env(environ, env_file=env_file)
        return cls(environ, env_file, str(secret), broadcast)


def channel_rules(config: BroadcastConfig, store: Store) -> ChannelRegistry:
    """Who may join which channel, signed with the app's credentials."""
    channels = ChannelRegistry(
        config,
        user_data=lambda user: {"id": user.id, "user_info": {"name": user.name}},
    )

    @channels.channel("patient.{patient_id}")
    def patient(user: User, patient_id: str) -> bool:
        return user.is_doctor or user.id == patient_id

    @channels.channel("consultation.{room_id}")
    def consultation(user: User, room_id: str) -> dict[str, str] | None:
        appointment = store.room(room_id)
        if appointment is None or not appointment.involves(user):
            return None
        return user.public()  # the member's user_info; its id is user.id

    return channels
