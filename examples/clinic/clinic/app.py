"""The clinic: FastAPI pages and actions, realtime through ``overtone.broadcast``.

Run it next to ``overtone start`` (see the README)::

    uvicorn clinic.app:app --host 127.0.0.1 --port 8000

Fail soft: with overtone stopped or ``REVERB_APP_KEY`` unset, every page renders and says
realtime is off, and every action still succeeds; its JSON answer reports
``"broadcast": false`` and the broadcaster logs one warning a minute.

No missed update (overtone's lossless reconnect): a page reads its channels' stream positions
*before* the state it renders, and hands them to the recovery add-on, which the page loads
from overtone. After a network cut or a server restart the page receives what it missed; when
that is gone, the add-on says so (``overtone:resync``) and the page reloads that state from
the JSON routes below. Chat lines and status changes are keyed (message id, version), so
none is ever shown twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from overtone.broadcast import (
    Broadcaster,
    FrontendConfig,
    echo_script,
    frontend_config,
    recovery_script_tag,
    socket_id_from_headers,
)
from overtone.broadcast.starlette import install

from .realtime import (
    APPOINTMENT_STATUS,
    CHAT_MESSAGE,
    NOTIFICATION,
    Settings,
    channel_rules,
    patient_channel,
    room_channel,
    user_channel,
)
from .store import STATUSES, Appointment, Store
from .users import BY_ROLE, COOKIE, USERS, CookieSigner, User

logger = logging.getLogger("clinic")

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parent / "node_modules"
VENDOR = {
    "pusher.min.js": NODE_MODULES / "pusher-js" / "dist" / "web" / "pusher.min.js",
    "echo.iife.js": NODE_MODULES / "laravel-echo" / "dist" / "echo.iife.js",
}


class StatusChange(BaseModel):
    status: str


class ChatIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


class NotificationIn(BaseModel):
    user_id: str
    text: str = Field(min_length=1, max_length=500)


def safe_next(target: str) -> str:
    """Only same-site paths: ``/consultation/r1``, never ``//evil.example``."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``settings`` default to the environment and ``.env``."""
    settings = Settings.load() if settings is None else settings
    store = Store()
    broadcaster = Broadcaster(settings.broadcast)
    channels = channel_rules(settings.broadcast, store)
    signer = CookieSigner(settings.secret_key)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(people=USERS, statuses=STATUSES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        missing = [str(path) for path in VENDOR.values() if not path.is_file()]
        if missing:
            logger.warning("run `npm ci` in %s: missing %s", HERE.parent, ", ".join(missing))
        if not broadcaster.enabled:
            reason = broadcaster.disabled_reason
            logger.warning("realtime is off (%s); the app works without it", reason)
        yield
        broadcaster.close()

    app = FastAPI(title="overtone clinic example", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def current_user(request: Request) -> User | None:
        return signer.user(request.cookies.get(COOKIE))

    # POST /broadcasting/auth and /broadcasting/user-auth, for laravel-echo's defaults.
    install(app, channels, current_user)

    def signed_in(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise HTTPException(401, "sign in first")
        return user

    def realtime_for(
        request: Request, start: dict[str, Any] | None = None
    ) -> FrontendConfig | None:
        return frontend_config(
            settings.environ,
            env_file=settings.env_file,
            request_host=request.headers.get("host"),
            positions=start or {},
            # Patients behind networks that refuse WebSockets (hospital and hotel proxies)
            # fall back to HTTP streaming or polling: docs/fallback.md.
            http_fallback=True,
        )

    def positions(request: Request, channels: list[str]) -> dict[str, Any] | None:
        """Where the page's channels stand; read *before* the state the page shows.

        ``None`` values (overtone down, history off) just mean the page starts without.
        """
        if realtime_for(request) is None:
            return None
        return {channel: broadcaster.position(channel) for channel in channels}

    def page(
        request: Request,
        template: str,
        user: User | None,
        start: dict[str, Any] | None = None,
        **context: Any,
    ) -> Response:
        realtime = realtime_for(request, start)
        data = {
            "user": None if user is None else user.public(),
            "statuses": STATUSES,
            "configured": realtime is not None,
            **context.pop("data", {}),
        }
        values = {
            "user": user,
            "realtime": realtime,
            "recovery": recovery_script_tag(realtime),
            "echo": echo_script(realtime),
            "data": data,
        }
        return templates.TemplateResponse(request, template, {**values, **context})

    def notes(user: User) -> list[dict[str, Any]]:
        return [note.to_json() for note in store.notifications(user.id)]

    def changes_of(appointments: list[Appointment]) -> dict[str, list[dict[str, Any]]]:
        return {a.id: [c.to_json() for c in store.changes(a.id)] for a in appointments}

    @app.get("/")
    def home(request: Request) -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse("/login", 303)
        patients = sorted({a.patient_id for a in store.appointments_for(user)})
        start = positions(request, [*map(patient_channel, patients), user_channel(user.id)])
        appointments = store.appointments_for(user)  # the state, read after the positions
        return page(
            request,
            "home.html",
            user,
            start,
            appointments=appointments,
            changes=changes_of(appointments),
            notifications=notes(user),
            data={"patients": patients},
        )

    @app.get("/login")
    def login(
        request: Request,
        role: str | None = Query(None, alias="as"),
        next_url: str = Query("/", alias="next"),
    ) -> Response:
        user = BY_ROLE.get(role or "")
        if user is None:
            return page(request, "login.html", None, users=list(USERS.values()), next=next_url)
        response = RedirectResponse(safe_next(next_url), 303)
        response.set_cookie(COOKIE, signer.sign(user), httponly=True, samesite="lax")
        return response

    @app.get("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/consultation/{room_id}")
    def consultation(request: Request, room_id: str) -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse(f"/login?next=/consultation/{room_id}", 303)
        appointment = store.room(room_id)
        if appointment is None:
            raise HTTPException(404, "no such consultation room")
        if not appointment.involves(user):
            raise HTTPException(403, "this consultation is not yours")
        channels = [patient_channel(appointment.patient_id), room_channel(room_id)]
        start = positions(request, [*channels, user_channel(user.id)])
        appointment = store.appointment(appointment.id) or appointment  # read after positions
        messages = store.messages(room_id)
        return page(
            request,
            "consultation.html",
            user,
            start,
            appointment=appointment,
            appointments=[appointment],
            changes=changes_of([appointment]),
            messages=messages,
            notifications=notes(user),
            data={"patients": [appointment.patient_id], "room": room_id},
        )

    def own_appointment(user: User, appointment_id: str) -> Appointment:
        appointment = store.appointment(appointment_id)
        if appointment is None:
            raise HTTPException(404, "no such appointment")
        if not appointment.involves(user):
            raise HTTPException(403, "this appointment is not yours")
        return appointment

    @app.post("/appointments/{appointment_id}/status")
    def change_status(request: Request, appointment_id: str, change: StatusChange) -> Any:
        user = signed_in(request)
        appointment = own_appointment(user, appointment_id)
        if not user.is_doctor:
            raise HTTPException(403, "only the doctor changes an appointment")
        if change.status not in STATUSES:
            raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
        changed, made = store.set_status(appointment.id, change.status)
        update = {"appointment": changed.to_json(), "change": made.to_json()}
        sent = broadcaster.trigger(
            patient_channel(changed.patient_id),
            APPOINTMENT_STATUS,
            update,
            socket_id=socket_id_from_headers(request.headers),  # toOthers()
        )
        return {"ok": True, **update, "broadcast": sent is not None}

    @app.get("/patients/{patient_id}/appointments")
    def patient_appointments(request: Request, patient_id: str) -> Any:
        """What a page reloads when its patient channel must resync."""
        user = signed_in(request)
        if not (user.is_doctor or user.id == patient_id):
            raise HTTPException(403, "these appointments are not yours")
        mine = [a for a in store.appointments_for(user) if a.patient_id == patient_id]
        changes = changes_of(mine)
        return {"appointments": [{**a.to_json(), "changes": changes[a.id]} for a in mine]}

    @app.get("/consultation/{room_id}/messages")
    def room_messages(request: Request, room_id: str) -> Any:
        """What a page reloads when its room channel must resync."""
        user = signed_in(request)
        appointment = store.room(room_id)
        if appointment is None or not appointment.involves(user):
            raise HTTPException(403, "this consultation is not yours")
        return {"messages": [m.to_json() for m in store.messages(room_id)]}

    @app.post("/consultation/{room_id}/messages")
    def send_message(request: Request, room_id: str, chat: ChatIn) -> Any:
        user = signed_in(request)
        appointment = store.room(room_id)
        if appointment is None or not appointment.involves(user):
            raise HTTPException(403, "this consultation is not yours")
        message = store.add_message(room_id, user, chat.text)
        sent = broadcaster.trigger(
            room_channel(room_id),
            CHAT_MESSAGE,
            {"message": message.to_json()},
            socket_id=socket_id_from_headers(request.headers),  # the sender shows it already
        )
        return {"ok": True, "message": message.to_json(), "broadcast": sent is not None}

    @app.get("/notifications")
    def own_notifications(request: Request) -> Any:
        """What a page reloads when its user channel must resync."""
        return {"notifications": notes(signed_in(request))}

    @app.post("/notifications")
    def notify(request: Request, notification: NotificationIn) -> Any:
        user = signed_in(request)
        if not user.is_doctor:
            raise HTTPException(403, "only doctors send notifications")
        target = USERS.get(notification.user_id)
        if target is None:
            raise HTTPException(404, "no such user")
        note = store.notify(target.id, user, notification.text)
        sent = broadcaster.send_to_user(target.id, NOTIFICATION, {"notification": note.to_json()})
        return {"ok": True, "notification": note.to_json(), "broadcast": sent is not None}

    @app.get("/vendor/{name}")
    def vendor(name: str) -> FileResponse:
        path = VENDOR.get(name)
        if path is None or not path.is_file():
            raise HTTPException(404, f"{name}: run `npm ci` in examples/clinic")
        return FileResponse(path, media_type="text/javascript")

    return app


logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
app = create_app()
