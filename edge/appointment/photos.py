"""Lesions and their photographs: the part of :class:`AppointmentDesk` the lesion and capture screens call.

A mixin of :class:`edge.appointment.desk.AppointmentDesk`, which provides the lock, the open
draft (``_open_draft``), saving with audit (``_commit``), the store and the service.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timezone

from wire.codec import sha256_hex
from wire.messages import VIEWS
from wire.referral import OVERRIDE_REASONS, Override

from ..atrest import SealedDataError
from ..camera import CameraError
from ..quality import assess
from . import cases, inputs
from .draft import Appointment, LesionDraft, Shot
from .errors import AppointmentError

log = logging.getLogger("edge.appointment")

#: Shots of one view at most (retakes included).
MAX_SHOTS_PER_VIEW = 9


class LesionsAndPhotos:
    """Add, change and remove lesions; capture, select and override their shots."""

    # ------------------------------------------------------------------ lesions
    def add_lesion(self, staff_id: str, *, site: str, laterality: str, detail: str = "", map_side=None,
                   map_x=None, map_y=None, size_mm=None, history: dict | None = None,
                   added_reason: str = "") -> LesionDraft:
        """Add a lesion. Once photographing began, a lesion not on the referral needs ``added_reason``."""
        with self._lock:
            draft = self._open_draft(staff_id)
            if len(draft.lesions) >= self.settings.max_lesions:
                raise AppointmentError(f"This appointment has {len(draft.lesions)} lesions, the most this kiosk "
                                       "takes in one referral. Ask the hub coordinator to book another for the rest.")
            location = inputs.check_location(site, laterality, detail, map_side, map_x, map_y)
            reason = (added_reason or "").strip()
            on_referral = not draft.photographing_started
            if not on_referral and not reason:
                raise AppointmentError("Photographing has begun, so this lesion was not on the referral: "
                                       "give the reason it is photographed.", "added_reason")
            if len(reason) > 200:
                raise AppointmentError("The reason is at most 200 characters.", "added_reason")
            n = len(draft.lesions) + 1
            lesion = LesionDraft(index=n, label=f"L{n}", on_referral=on_referral, added_reason=reason,
                                 location=location, size_mm=inputs.check_size(size_mm),
                                 history=inputs.check_history(history))
            draft.lesions.append(lesion)
            self._commit(draft, staff_id, "lesion-add", lesion=n, detail="" if on_referral else "not on referral")
            return copy.deepcopy(lesion)

    def update_lesion(self, staff_id: str, index: int, **fields) -> LesionDraft:
        """Change some of a lesion's fields (the keywords of :meth:`add_lesion`)."""
        unknown = set(fields) - set(inputs.LESION_FIELDS)
        if unknown:
            raise TypeError(f"unknown lesion fields {sorted(unknown)}")
        with self._lock:
            draft = self._open_draft(staff_id)
            les = self._lesion(draft, index)
            loc = les.location.model_dump()
            loc.update({k: fields[k] for k in ("site", "laterality", "detail", "map_side", "map_x", "map_y")
                        if k in fields})
            les.location = inputs.check_location(**loc)
            if "size_mm" in fields:
                les.size_mm = inputs.check_size(fields["size_mm"])
            if "history" in fields:
                les.history = inputs.check_history(fields["history"])
            if "added_reason" in fields:
                reason = (fields["added_reason"] or "").strip()
                if not les.on_referral and not reason:
                    raise AppointmentError("This lesion was not on the referral: give the reason it is photographed.",
                                           "added_reason")
                les.added_reason = reason[:200]
            self._commit(draft, staff_id, "lesion-update", lesion=index)
            return copy.deepcopy(les)

    def remove_lesion(self, staff_id: str, index: int) -> None:
        """Remove a lesion and its photographs; the later lesions move up (L3 becomes L2)."""
        with self._lock:
            draft = self._open_draft(staff_id)
            les = self._lesion(draft, index)
            draft.lesions.remove(les)
            for i, other in enumerate(draft.lesions, start=1):
                other.index, other.label = i, f"L{i}"
            self._commit(draft, staff_id, "lesion-remove", lesion=index,
                         detail=f"{len(les.all_shots())} photograph(s) dropped")
            for s in les.all_shots():
                self.store.drop_shot(draft.referral_id, s.file)

    @staticmethod
    def _lesion(draft: Appointment, index: int) -> LesionDraft:
        les = draft.lesion(int(index))
        if les is None:
            raise AppointmentError(f"There is no lesion L{index} in this appointment.")
        return les

    # ------------------------------------------------------------------ photographs
    def capture(self, staff_id: str, index: int, view: str) -> Shot:
        """Take a still of ``view`` for lesion ``index``: quality gate, and the classifier on the
        dermoscopic view when AI consent was given. A second shot of a view is audited as a retake."""
        if view not in VIEWS:
            raise AppointmentError(f"Unknown view {view!r}: dermoscopic, close-up or regional.")
        with self._lock:
            draft = self._open_draft(staff_id)
            if not draft.details_done:
                raise AppointmentError("Finish the appointment's details first: "
                                       + cases.missing(draft, [], self.send_all)[0])
            les = self._lesion(draft, index)
            shots = les.shots.setdefault(view, [])
            if len(shots) >= MAX_SHOTS_PER_VIEW:
                raise AppointmentError(f"{les.label} already has {len(shots)} {view} photographs: choose one of them.")
            svc = self.service
            with svc._lock:                    # the camera and the classifier, shared with the headless flow
                try:
                    frame = svc.camera.capture()
                except CameraError as exc:
                    raise AppointmentError(f"The camera did not deliver a picture: {exc}") from None
                shot = Shot(view=view, shot_no=len(shots) + 1, captured_at=frame.captured_at, width=frame.width,
                            height=frame.height, sha256=sha256_hex(frame.jpeg), length=len(frame.jpeg),
                            quality=assess(frame.jpeg, view, svc.cfg.quality, draft.fitzpatrick,
                                           les.judged_filling(view)))
                if any(s.sha256 == shot.sha256 for s in les.all_shots()):
                    raise AppointmentError("The camera returned the same picture as before: take it again.")
                if view == "dermoscopic" and draft.ai_allowed:
                    shot.classification = self._classify(frame.jpeg, draft.referral_id)
            shot.file = self.store.put_shot(draft, frame.jpeg)
            current = [s for s in shots if s.selected]
            shot.selected = self.send_all or shot.passed or not current
            if shot.selected and not self.send_all:
                for s in shots:
                    s.selected = False
            shots.append(shot)
            draft.first_shot_at = draft.first_shot_at or shot.captured_at
            try:
                self._commit(draft, staff_id, "capture" if shot.shot_no == 1 else "retake", lesion=les.index,
                             view=view, shot=shot.shot_no, detail="quality ok" if shot.passed else "quality failed")
            except BaseException:
                self.store.drop_shot(draft.referral_id, shot.file)
                raise
            svc.last_capture_at = frame.captured_at
            log.info("appointment %s: L%d %s shot %d (quality %s)", draft.referral_id, les.index, view,
                     shot.shot_no, "ok" if shot.passed else "failed")
            return copy.deepcopy(shot)

    def _classify(self, jpeg: bytes, referral_id):
        """The classifier's result, or None when it failed (the case then says ai="failed")."""
        try:
            with self.service._lock:
                return self.service.classify(jpeg)
        except Exception as exc:      # the case goes with ai="failed"; the photograph is kept
            log.error("appointment %s: the classifier failed (%s)", referral_id, type(exc).__name__)
            return None

    def _classify_missing(self, draft: Appointment) -> None:
        """Classify dermoscopic shots taken before AI consent was given."""
        for les in draft.lesions:
            for s in les.shots.get("dermoscopic", []):
                if s.classification is None:
                    s.classification = self._classify(self.store.read_shot(draft.referral_id, s.file),
                                                      draft.referral_id)

    def mark_fills_view(self, staff_id: str, index: int, fills_view: bool) -> LesionDraft:
        """Mark lesion ``index`` as larger than the dermatoscope's view, or take the mark back; its dermoscopic
        photographs are judged again (the gate does not judge what needs skin in view: ``assess(fills_view)``)."""
        with self._lock:
            draft = self._open_draft(staff_id)
            les = self._lesion(draft, index)
            before, les.fills_view = les.fills_view, bool(fills_view)
            again = self._judge_again(draft, les, "dermoscopic") if les.fills_view != before else ""
            state = "marked" if les.fills_view else "mark taken back"
            self._commit(draft, staff_id, "fills-view", lesion=les.index, view="dermoscopic",
                         detail=f"{state}; {again}" if again else state)
            return copy.deepcopy(les)

    def _judge_again(self, draft: Appointment, lesion: LesionDraft | None = None, view: str | None = None) -> str:
        """Run the quality gate again on every shot (of ``lesion``'s ``view`` only, where given), for what the
        desk now records (the skin type: the exposure check expects darker skin dimmer; a lesion larger than the
        view); where a view's chosen shot can no longer be sent and another now passes, choose the latest that
        passes, as a capture would. Returns what changed, for the audit ("" when nothing did)."""
        passed = failed = 0
        for les in draft.lesions if lesion is None else [lesion]:
            for view_, shots in les.shots.items():
                if view is not None and view_ != view:
                    continue
                for s in shots:
                    was = s.passed
                    try:
                        jpeg = self.store.read_shot(draft.referral_id, s.file)
                    except (OSError, SealedDataError) as exc:   # its verdict stands; submitting will say what is wrong
                        log.error("appointment %s: %s shot %d not judged again (%s)", draft.referral_id, view_,
                                  s.shot_no, type(exc).__name__)
                        continue
                    s.quality = assess(jpeg, view_, self.service.cfg.quality, draft.fitzpatrick,
                                       les.judged_filling(view_))
                    passed += s.passed and not was
                    failed += was and not s.passed
                if not self.send_all and not any(s.selected and s.sendable for s in shots):
                    best = [s for s in shots if s.passed]
                    if best:
                        for s in shots:
                            s.selected = s is best[-1]
        if not passed and not failed:
            return ""
        return f"judged again: {passed} photograph(s) now pass, {failed} now fail"

    def _find_shot(self, draft: Appointment, index: int, view: str, shot_no: int) -> tuple[LesionDraft, Shot]:
        les = self._lesion(draft, index)
        shot = les.shot(view, int(shot_no))
        if shot is None:
            raise AppointmentError(f"{les.label} has no {view} photograph number {shot_no}.")
        return les, shot

    def select(self, staff_id: str, index: int, view: str, shot_no: int) -> Shot:
        """Mark the shot to send for its view (send_shots "selected")."""
        with self._lock:
            draft = self._open_draft(staff_id)
            les, shot = self._find_shot(draft, index, view, shot_no)
            if self.send_all:
                raise AppointmentError("This kiosk sends every photograph: there is nothing to choose.")
            for s in les.shots[view]:
                s.selected = s is shot
            self._commit(draft, staff_id, "select", lesion=les.index, view=view, shot=shot.shot_no)
            return copy.deepcopy(shot)

    def override(self, staff_id: str, index: int, view: str, shot_no: int, reason: str, text: str = "") -> Shot:
        """Send a shot that failed the quality gate with a reason (it travels with the image)."""
        with self._lock:
            draft = self._open_draft(staff_id)
            les, shot = self._find_shot(draft, index, view, shot_no)
            if shot.passed:
                raise AppointmentError("This photograph passed the quality check: it needs no reason.")
            if reason not in OVERRIDE_REASONS:
                raise AppointmentError("Choose why it is sent as it is: " + ", ".join(OVERRIDE_REASONS.values()) + ".",
                                       "reason")
            text = (text or "").strip()
            if reason == "other" and not text:
                raise AppointmentError("Say in a few words why it is sent as it is (reason 'Other').", "text")
            if len(text) > 200:
                raise AppointmentError("The reason's text is at most 200 characters.", "text")
            shot.override = Override(reason=reason, text=text, by=staff_id, at=datetime.now(timezone.utc))
            if not self.send_all:
                for s in les.shots[view]:
                    s.selected = s is shot
            self._commit(draft, staff_id, "override", lesion=les.index, view=view, shot=shot.shot_no, detail=reason)
            return copy.deepcopy(shot)

    def shot_jpeg(self, index: int, view: str, shot_no: int) -> bytes:
        """The JPEG of a shot of the open appointment (for thumbnails)."""
        with self._lock:
            if self._appt is None:
                raise AppointmentError("No appointment is open.")
            _, shot = self._find_shot(self._appt, index, view, shot_no)
            return self.store.read_shot(self._appt.referral_id, shot.file)
