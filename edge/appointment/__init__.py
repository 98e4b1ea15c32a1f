"""The photographer's appointment at the kiosk: one GP referral, its patient, consents and lesions.

:class:`AppointmentDesk` (``service.desk`` on a running kiosk) is what the kiosk page calls:
sign-in with a staff id and PIN (:mod:`.staff`), the appointment's details and lesions,
photographs with the quality gate, and submit: one ``wire.referral.CaseHeaderV2`` per lesion
into the outbox as one group. The open appointment is kept sealed on disk (:mod:`.store`), so
a restart loses nothing, and every action is in the kiosk's audit log (:mod:`.audit`).
"""

from .desk import AppointmentDesk
from .draft import Appointment, LesionDraft, Shot
from .errors import AppointmentError, NotSignedIn, SignInError

__all__ = ["AppointmentDesk", "Appointment", "LesionDraft", "Shot", "AppointmentError", "NotSignedIn",
           "SignInError"]
