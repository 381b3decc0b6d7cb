"""In-memory state: appointments and their changes, rooms, chat history and notifications.

No database: everything lives in one :class:`Store` per process and is lost on restart.
Endpoints run in FastAPI's thread pool (they call the synchronous ``Broadcaster``), so
every change happens under one lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .users import User

STATUSES: dict[str, str] = {
    "scheduled": "Scheduled",
    "confirmed": "Confirmed",
    "waiting": "Patient waiting",
    "in_progress": "In progress",
    "completed": "Completed",
    "cancelled": "Cancelled",
}
HISTORY = 50
"""Chat messages kept per room, and notifications per user."""


@dataclass(frozen=True, slots=True)
class Appointment:
    """A consultation booked between a doctor and a patient, held in a room."""

    id: str
    patient_id: str
    doctor_id: str
    time: str
    reason: str
    room_id: str
    status: str = "scheduled"
    version: int = 0
    """How many times the status changed: a page never goes back to a lower version."""

    @property
    def status_label(self) -> str:
        """How the status reads on the page."""
        return STATUSES[self.status]

    def to_json(self) -> dict[str, Any]:
        """The appointment as pages and broadcasts carry it."""
        return {**asdict(self), "status_label": self.status_label}

    def involves(self, user: User) -> bool:
        """Whether ``user`` is this appointment's doctor or patient."""
        return user.id in (self.patient_id, self.doctor_id)


@dataclass(frozen=True, slots=True)
class Change:
    """One status change of an appointment, numbered by the version it made."""

    appointment_id: str
    version: int
    status: str
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The change as pages and broadcasts carry it."""
        return {**asdict(self), "status_label": STATUSES[self.status]}


@dataclass(frozen=True, slots=True)
class Message:
    """One chat line in a consultation room."""

    id: int
    room_id: str
    user_id: str
    name: str
    text: str
    sent_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The message as pages and broadcasts carry it."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Notification:
    """A note sent to one user (shown live when they are signed in, and on later pages)."""

    id: int
    user_id: str
    sender: str
    text: str
    sent_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The notification as pages and broadcasts carry it."""
        return asdict(self)


class Store:
    """The clinic's whole state, safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._appointments: dict[str, Appointment] = {
            "a1": Appointment(
                id="a1",
                patient_id="p1",
                doctor_id="d1",
                time="Today, 14:30",
                reason="Follow-up: blood pressure",
                room_id="r1",
            ),
        }
        self._changes: dict[str, deque[Change]] = {}
        self._messages: dict[str, deque[Message]] = {}
        self._notifications: dict[str, deque[Notification]] = {}

    def appointments_for(self, user: User) -> list[Appointment]:
        """A doctor's own appointments, or a patient's."""
        with self._lock:
            return [a for a in self._appointments.values() if a.involves(user)]

    def appointment(self, appointment_id: str) -> Appointment | None:
        """One appointment by id."""
        with self._lock:
            return self._appointments.get(appointment_id)

    def room(self, room_id: str) -> Appointment | None:
        """The appointment a consultation room belongs to."""
        with self._lock:
            return next((a for a in self._appointments.values() if a.room_id == room_id), None)

    def set_status(self, appointment_id: str, status: str) -> tuple[Appointment, Change]:
        """Change a status (``KeyError`` for an unknown appointment or status)."""
        if status not in STATUSES:
            raise KeyError(status)
        with self._lock:
            current = self._appointments[appointment_id]
            changed = replace(current, status=status, version=current.version + 1)
            self._appointments[appointment_id] = changed
            change = Change(appointment_id, changed.version, status)
            self._changes.setdefault(appointment_id, deque(maxlen=HISTORY)).append(change)
            return changed, change

    def changes(self, appointment_id: str) -> list[Change]:
        """An appointment's recent status changes, oldest first."""
        with self._lock:
            return list(self._changes.get(appointment_id, ()))

    def add_message(self, room_id: str, user: User, text: str) -> Message:
        """Append a chat message to a room's history."""
        with self._lock:
            message = Message(next(self._ids), room_id, user.id, user.name, text)
            self._messages.setdefault(room_id, deque(maxlen=HISTORY)).append(message)
            return message

    def messages(self, room_id: str) -> list[Message]:
        """A room's recent chat history, oldest first."""
        with self._lock:
            return list(self._messages.get(room_id, ()))

    def notify(self, user_id: str, sender: User, text: str) -> Notification:
        """Keep a notification for ``user_id``."""
        with self._lock:
            note = Notification(next(self._ids), user_id, sender.name, text)
            self._notifications.setdefault(user_id, deque(maxlen=HISTORY)).append(note)
            return note

    def notifications(self, user_id: str) -> list[Notification]:
        """A user's recent notifications, newest first."""
        with self._lock:
            return list(reversed(self._notifications.get(user_id, ())))
