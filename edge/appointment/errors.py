"""Errors of the kiosk appointment: ``str()`` is a message the photographer can act on."""

from __future__ import annotations


class AppointmentError(ValueError):
    """The photographer's input or the appointment is not ready; ``str()`` is shown on the kiosk page.

    ``field`` names the input to fix (the desk method's keyword, e.g. ``"nhs_number"``), or None
    when the message is about the whole screen.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotSignedIn(AppointmentError):
    """The staff id given is not signed in at this kiosk (signed out, idle, or the kiosk restarted)."""


class SignInError(AppointmentError):
    """A sign-in was refused: unknown staff id, wrong PIN, or the staff id is locked for a while.

    ``locked_until`` is set (UTC) while the staff id is locked.
    """

    def __init__(self, message: str, locked_until=None):
        super().__init__(message, field="pin")
        self.locked_until = locked_until
