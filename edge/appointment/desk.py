"""The appointment desk: the photographer's whole appointment at the kiosk, one referral at a time.

Reached as ``service.desk`` on a running :class:`edge.service.KioskService`. Every call names
the signed-in photographer (``staff_id``); every change is checked first (AppointmentError with a
message for the page), then saved sealed on disk (:mod:`.store`) and written to the audit log
(:mod:`.audit`). Submit turns the appointment into one case per lesion and stores them in the
outbox as one group (all or none), then wakes the link. Logs name the appointment by its
``referral_id`` (a UUID the kiosk made) only, never a patient identifier.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
import threading
import uuid
from datetime import datetime, timezone

from wire.referral import (ROUTES, ConsentRecord, Consents, IdentifierError, normalise_nhs_number,
                           normalise_ods_code, normalise_reference)
from wire.staff import StaffMember

from ..atrest import key_path, load_key
from ..outbox import DiskFullError, DuplicateGroupError
from ..version import software_version
from . import cases, inputs
from .audit import AuditLog
from .draft import Appointment
from .errors import AppointmentError, NotSignedIn
from .photos import LesionsAndPhotos
from .staff import Roster, check_sign_in
from .store import DISK_FULL, AppointmentStore, disk_full

log = logging.getLogger("edge.appointment")


class AppointmentDesk(LesionsAndPhotos):
    """The open appointment of one kiosk and the calls the kiosk page makes on it (thread-safe)."""

    def __init__(self, service):
        """Work for ``service`` (a started KioskService: its config, camera, classifier, outbox, link)."""
        self.service = service
        cfg = service.cfg
        self.settings = cfg.appointment
        self.audit = AuditLog(cfg.data_dir / "audit.db")
        self.roster_source = Roster(cfg.data_dir, self.settings.staff_file)
        self.store = AppointmentStore(cfg.data_dir, service.outbox.sealer, cfg.retention.min_free_mb << 20)
        self._secret = load_key(key_path(cfg.data_dir, cfg.data_key_file))
        self._lock = threading.RLock()
        self._appt: Appointment | None = None
        self._signed_in: dict[str, StaffMember] = {}

    # ------------------------------------------------------------------ life
    def restore(self) -> Appointment | None:
        """Reopen the appointment the last run left open (called at start-up)."""
        with self._lock:
            appt = self.store.restore()
            if appt is not None and self._known_key(appt) is not None:
                log.warning("appointment %s was already submitted before the restart: removed", appt.referral_id)
                self.store.remove(appt.referral_id)
                appt = None
            self._appt = appt
            if appt is not None:
                self.audit.record("restored", "kiosk", appt.referral_id, detail=f"{len(appt.lesions)} lesion(s)")
                log.info("appointment %s restored after a restart", appt.referral_id)
            return appt

    def close(self) -> None:
        """Close the audit log (the open appointment stays on disk)."""
        self.audit.close()

    @property
    def send_all(self) -> bool:
        """True when every shot is sent (config ``send_shots = "all"``)."""
        return self.settings.send_shots == "all"

    # ------------------------------------------------------------------ staff
    def roster(self) -> list[StaffMember]:
        """Who may sign in (for the sign-in screen)."""
        return list(self.roster_source.current().staff)

    def reload_staff(self) -> None:
        """Read the roster again (a config bundle delivered a new staff.json); signs out who left it."""
        roster = self.roster_source.reload()
        with self._lock:
            for sid in [s for s in self._signed_in if roster.member(s) is None]:
                self._signed_in.pop(sid)
                self.audit.record("sign-out", sid, detail="removed from roster")

    def sign_in(self, staff_id: str, pin: str) -> StaffMember:
        """Check the PIN (5 wrong PINs lock the staff id for 5 minutes); SignInError says why not."""
        member = check_sign_in(self.roster_source, self.audit, staff_id, pin)
        with self._lock:
            self._signed_in[member.staff_id] = member
        log.info("staff %s signed in", member.staff_id)
        return member

    def sign_out(self, staff_id: str, why: str = "signed-out") -> None:
        """Sign ``staff_id`` out (``why``: "signed-out" or "idle"); the open appointment stays open."""
        with self._lock:
            if self._signed_in.pop(staff_id, None) is not None:
                self.audit.record("sign-out", staff_id, self._appt.referral_id if self._appt else None,
                                  detail="idle" if why == "idle" else "signed-out")

    def signed_in(self, staff_id: str | None) -> StaffMember | None:
        """The signed-in member with this id, or None."""
        with self._lock:
            return self._signed_in.get(staff_id or "")

    def can_show_classifier(self, staff_id: str | None) -> bool:
        """True only when config ``appointment.show_classifier`` is on and ``staff_id`` is signed in."""
        return self.settings.show_classifier and self.signed_in(staff_id) is not None

    def _staff(self, staff_id: str) -> StaffMember:
        member = self.signed_in(staff_id)
        if member is None:
            raise NotSignedIn("Sign in first: tap your name and enter your PIN.")
        return member

    # ------------------------------------------------------------------ the appointment
    def current(self) -> Appointment | None:
        """The open appointment (a copy), or None."""
        with self._lock:
            return copy.deepcopy(self._appt)

    def _open_draft(self, staff_id: str) -> Appointment:
        self._staff(staff_id)
        if self._appt is None:
            raise AppointmentError("No appointment is open: start one first.")
        return copy.deepcopy(self._appt)

    def _commit(self, draft: Appointment, staff_id: str, action: str, **where) -> None:
        """Save ``draft`` (sealed) and audit the action; on failure the previous state stays in force."""
        before = self._appt
        try:
            self.store.save(draft)
            self.audit.record(action, staff_id, draft.referral_id, **where)
        except (OSError, sqlite3.Error) as exc:
            if before is not None:
                try:
                    self.store.save(before)
                except (OSError, DiskFullError):
                    pass
            log.error("appointment %s: %s not saved (%s)", draft.referral_id, action, type(exc).__name__)
            if disk_full(exc) or (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()):
                raise DiskFullError(DISK_FULL) from None
            raise AppointmentError(f"The kiosk could not save this step ({type(exc).__name__}); try again, "
                                   "or call IT if it keeps failing.") from None
        self._appt = draft

    def open(self, staff_id: str) -> Appointment:
        """Open a new appointment (one referral); AppointmentError if one is already open."""
        with self._lock:
            self._staff(staff_id)
            if self._appt is not None:
                raise AppointmentError("An appointment is already open: finish it (submit) or discard it first.")
            draft = Appointment(referral_id=uuid.uuid4(), opened_at=datetime.now(timezone.utc), opened_by=staff_id)
            self._commit(draft, staff_id, "open")
            log.info("appointment %s opened", draft.referral_id)
            return copy.deepcopy(draft)

    def set_patient(self, staff_id: str, nhs_number: str, date_of_birth: str, sex: str) -> Appointment:
        """Record the patient: NHS number (checked), date of birth (not in the future), sex."""
        with self._lock:
            draft = self._open_draft(staff_id)
            try:
                nhs = normalise_nhs_number(nhs_number)
            except IdentifierError as exc:
                raise AppointmentError(str(exc), "nhs_number") from None
            dob = inputs.check_date_of_birth(date_of_birth)
            sex = inputs.check_sex(sex)
            if draft.referral and inputs.parse_date(draft.referral["referral_date"], "referral date") < dob:
                raise AppointmentError("The referral date is before this date of birth: check both dates.",
                                       "date_of_birth")
            draft.nhs_number, draft.date_of_birth, draft.sex = nhs, dob, sex
            self._refuse_known(draft)
            self._commit(draft, staff_id, "patient")
            return copy.deepcopy(draft)

    def set_skin_type(self, staff_id: str, fitzpatrick: str) -> Appointment:
        """Record the patient's Fitzpatrick skin type (I..VI); photographs already taken are judged again by it."""
        with self._lock:
            draft = self._open_draft(staff_id)
            before, draft.fitzpatrick = draft.fitzpatrick, inputs.check_fitzpatrick(fitzpatrick)
            again = self._judge_again(draft) if draft.fitzpatrick != before else ""
            self._commit(draft, staff_id, "skin-type", detail=f"{draft.fitzpatrick}; {again}" if again
                         else draft.fitzpatrick)
            return copy.deepcopy(draft)

    def set_referral(self, staff_id: str, reference: str, referral_date: str, practice_ods: str,
                     route: str) -> Appointment:
        """Record the referral: reference (e-RS UBRN or local), date, referring practice (ODS code), route."""
        with self._lock:
            draft = self._open_draft(staff_id)
            inputs.check_reference_text(reference)
            try:
                ref, kind = normalise_reference(reference)
            except IdentifierError as exc:
                raise AppointmentError(str(exc), "reference") from None
            try:
                ods = normalise_ods_code(practice_ods)
            except IdentifierError as exc:
                raise AppointmentError(str(exc), "practice_ods") from None
            when = inputs.check_referral_date(referral_date, draft.date_of_birth)
            if route not in ROUTES:
                raise AppointmentError("Choose the route: GP referral or direct to hub.", "route")
            draft.referral = {"reference": ref, "reference_kind": kind, "referral_date": when.isoformat(),
                              "practice_ods": ods, "route": route}
            self._refuse_known(draft)
            self._commit(draft, staff_id, "referral", detail=f"{kind} {route}")
            return copy.deepcopy(draft)

    def set_consents(self, staff_id: str, photography: bool, ai_analysis: bool, teaching: bool) -> Appointment:
        """Record the three consents, each with time and photographer.

        Without consent to photography the appointment is closed (nothing kept) and
        AppointmentError says what to do. Without AI consent no classifier runs (results
        already computed are dropped).
        """
        with self._lock:
            draft = self._open_draft(staff_id)
            now = datetime.now(timezone.utc)
            old = draft.consents
            answers = {"photography": bool(photography), "ai_analysis": bool(ai_analysis), "teaching": bool(teaching)}
            if not answers["photography"]:
                self._close(staff_id, "photography consent refused")
                raise AppointmentError("The patient did not consent to photographs for clinical care, so none can "
                                       "be taken: nothing was kept. Tell the patient the referral goes back to the "
                                       "hub coordinator, who arranges a face-to-face appointment.",
                                       "photography")
            records = {}
            for name, given in answers.items():
                prev = getattr(old, name) if old else None
                records[name] = prev if prev is not None and prev.given == given else \
                    ConsentRecord(given=given, at=now, by=staff_id)
            draft.consents = Consents(**records)
            if not draft.ai_allowed:
                for les in draft.lesions:
                    for s in les.all_shots():
                        s.classification = None
            else:
                self._classify_missing(draft)
            self._commit(draft, staff_id, "consent", detail=" ".join(
                f"{k}={'yes' if v else 'no'}" for k, v in answers.items()))
            return copy.deepcopy(draft)

    # ------------------------------------------------------------------ submit / discard
    def missing(self) -> list[str]:
        """What must still be done before submit (messages; empty when ready)."""
        with self._lock:
            if self._appt is None:
                return ["Start an appointment."]
            return cases.missing(self._appt, self.settings.required_views, self.send_all)

    def _key(self, appt: Appointment) -> str | None:
        """The outbox group key of the appointment's referral (an HMAC, never the identifiers in clear).

        A referral the centre asked to re-image (an open task, :mod:`edge.outcomes`) may be sent again:
        its new photographs go as a group of their own, keyed by this appointment's UUID as well."""
        if appt.nhs_number is None or appt.referral is None:
            return None
        key = cases.referral_key(self._secret, appt.referral["reference"], appt.nhs_number)
        return f"{key}:{appt.referral_id}" if self._reimage_of(appt) else key

    def _reimage_of(self, appt: Appointment) -> str | None:
        """The referral UUID of an open re-image task for the same reference and NHS number, or None."""
        outcomes = getattr(self.service, "outcomes", None)
        if outcomes is None or appt.nhs_number is None or appt.referral is None:
            return None
        return outcomes.open_reimage_referral(appt.referral["reference"], appt.nhs_number)

    def _known_key(self, appt: Appointment) -> str | None:
        key = self._key(appt)
        return self.service.outbox.group_submitted_at(key) if key else None

    def _refuse_known(self, appt: Appointment) -> None:
        at = self._known_key(appt)
        if at is not None:
            when = datetime.fromisoformat(at).astimezone().strftime("%d/%m/%Y at %H:%M")
            raise AppointmentError(f"This referral (same reference and NHS number) was already sent from this "
                                   f"kiosk on {when}. A referral is sent once: check the reference and the NHS "
                                   "number against the letter, or discard this appointment.", "reference")

    def submit(self, staff_id: str) -> list:
        """Store one case per lesion in the outbox (all or none) and wake the link; returns the CaseHeaderV2s.

        Refuses an incomplete appointment and a second submit of the same referral. DiskFullError
        passes through (the appointment stays open to retry).
        """
        with self._lock:
            draft = self._open_draft(staff_id)
            todo = cases.missing(draft, self.settings.required_views, self.send_all)
            if todo:
                raise AppointmentError("Not ready to send: " + todo[0] + (f" (and {len(todo) - 1} more)"
                                                                          if len(todo) > 1 else ""))
            self._refuse_known(draft)
            svc = self.service
            headers = cases.build_cases(draft, photographer=staff_id, site=svc.cfg.site, device_id=svc.cfg.device_id,
                                        software_version=software_version(), model_version=svc.model_version,
                                        send_all=self.send_all)
            shots = {s.sha256: s for les in draft.lesions for s in les.all_shots()}
            group = [(h, [self.store.read_shot(draft.referral_id, shots[m.sha256].file) for m in h.images])
                     for h in headers]
            try:
                stored = svc.outbox.add_group(group, group_key=self._key(draft), group_id=str(draft.referral_id))
            except DuplicateGroupError:
                self._refuse_known(draft)
                raise
            except DiskFullError:
                log.error("appointment %s: submit refused, storage full (kept open)", draft.referral_id)
                raise
            for h in stored:
                self._audit_quietly("submit", staff_id, draft.referral_id, lesion=h.lesion.index,
                                    detail=f"case {h.case_id} seq {h.seq}")
            reimaged = self._reimage_of(draft)
            self._record_sent(draft, staff_id, stored)
            if reimaged:                  # the new photographs answer the centre's re-image tasks
                for label in svc.outcomes.close_referral_tasks(reimaged, staff_id):
                    self._audit_quietly("task-done", staff_id, reimaged, detail=f"re-image {label}: sent again")
            self.store.remove(draft.referral_id)
            self._appt = None
            log.info("appointment %s submitted: %d case(s)", draft.referral_id, len(stored))
        if svc.link:
            svc.link.wake()
        return stored

    def complete_task(self, staff_id: str, referral_id: str, label: str) -> None:
        """Mark a re-image task done by the signed-in ``staff_id`` (audited); ValueError if it is not open."""
        self._staff(staff_id)
        self.service.outcomes.complete(referral_id, label, staff_id)
        self._audit_quietly("task-done", staff_id, referral_id, detail=f"re-image {label}")

    def _record_sent(self, draft: Appointment, staff_id: str, stored: list) -> None:
        """Keep (sealed) who a sent referral is for, so that its outcome and re-image tasks can be shown."""
        outcomes = getattr(self.service, "outcomes", None)
        if outcomes is None:
            return
        from ..outcomes import SentLesion
        from .cases import where_text

        try:
            outcomes.record_sent(draft.referral_id, draft.referral["reference"], draft.nhs_number,
                                 draft.date_of_birth.isoformat(), staff_id,
                                 [SentLesion(str(h.case_id), h.lesion.label, where_text(h.lesion)) for h in stored])
        except OSError as exc:          # the cases are stored: only the task screen's record is missing
            log.error("appointment %s: sent record not written (%s)", draft.referral_id, type(exc).__name__)

    def discard(self, staff_id: str, why: str) -> None:
        """Close the open appointment without sending anything; its photographs are deleted."""
        with self._lock:
            self._staff(staff_id)
            if self._appt is None:
                return
            self._close(staff_id, why)

    def _close(self, staff_id: str, why: str) -> None:
        appt = self._appt
        self._audit_quietly("discard", staff_id, appt.referral_id, detail=(why or "")[:80])
        self.store.remove(appt.referral_id)
        self._appt = None
        log.info("appointment %s discarded", appt.referral_id)

    def _audit_quietly(self, action: str, staff_id: str, referral_id, **where) -> None:
        """Audit an action that has already happened (a failure to record it is logged, not raised)."""
        try:
            self.audit.record(action, staff_id, referral_id, **where)
        except sqlite3.Error as exc:
            log.error("audit entry %s for appointment %s not written: %s", action, referral_id, exc)


