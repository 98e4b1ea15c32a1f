"""Cases of either schema version: stored idempotently by case UUID, in batches, and read back.

A batch's new cases, their image rows, their referrals (v2), their referrals'
worklist summaries (:mod:`.summary`) and their devices' last-seen times commit
in one transaction, one multi-row ``INSERT`` per table
(:func:`dashboard.store.schema.insert_rows`): a v2 case adds no query of its own.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from wire.codec import sha256_hex
from wire.messages import TIERS, CaseHeader, Classification, ImageMeta, Quality
from wire.referral import AnyCaseHeader, CaseHeaderV2, ShotMeta

from . import referrals, summary
from .files import discard_staged
from .schema import insert_rows, iso, transaction, utcnow

_CASE_COLUMNS = ("case_id", "device", "site", "seq", "referral_ref", "lesion_id", "body_site", "created_at",
                 "received_at", "software_version", "model_version", "risk", "probabilities",
                 "classification_model", "note", "image_count", "header", "header_sha256", "status",
                 *referrals.V2_CASE_COLUMNS)
_INSERT_CASE_HEAD = f"INSERT INTO cases ({', '.join(_CASE_COLUMNS)})"
_INSERT_IMAGE_HEAD = ("INSERT INTO case_images (case_id, position, sha256, view, captured_at, quality, classification, "
                      "shot, override_reason, override_text, override_by, override_at)")
TOUCH_DEVICE_HEAD = "INSERT INTO devices (device, site, last_seen)"
TOUCH_DEVICE_TAIL = ("ON CONFLICT(device) DO UPDATE SET site=excluded.site, "
                     "last_seen=max(last_seen, excluded.last_seen)")


def case_risk(header: AnyCaseHeader) -> tuple[str | None, dict[str, float] | None, str | None]:
    """The case's risk tier, probabilities and model: the case-level result, else its most severe image."""
    if header.classification is not None:
        c = header.classification
        return c.risk, dict(c.probabilities), c.model
    results = [im.classification for im in header.images if im.classification is not None]
    if not results:
        return None, None, None
    worst = min(results, key=lambda c: TIERS.index(c.risk))
    return worst.risk, dict(worst.probabilities), worst.model


@dataclass(frozen=True)
class SaveResult:
    """What :meth:`Store.save_case` did: ``status`` is ``"stored"``, ``"duplicate"`` or ``"conflict"``."""

    status: str
    case_id: str
    received_at: datetime


class CaseStore:
    """The case methods of :class:`dashboard.store.Store` (which provides ``conn``, ``db``, ``write_images``)."""

    def has_case(self, case_id: uuid.UUID | str) -> bool:
        """Whether a case with this UUID is committed."""
        row = self.conn.execute("SELECT 1 FROM cases WHERE case_id = ?", (str(case_id),)).fetchone()
        return row is not None

    def save_case(self, header: AnyCaseHeader, images: list[bytes], received_at: datetime | None = None) -> SaveResult:
        """Store one verified case and its images, idempotently by case UUID (see :meth:`save_cases`)."""
        return self.save_cases([(header, images, received_at or utcnow())])[0]

    def save_cases(self, batch: list[tuple[AnyCaseHeader, list[bytes], datetime]],
                   staged: dict[str, str] | None = None) -> list[SaveResult]:
        """Store verified cases ``(header, images, received_at)`` in one go, idempotently by case UUID.

        All new image files are made durable first, group-committed (see
        :meth:`write_images`; ``staged`` are temp files already written for
        them, which this call always consumes), then every new case, its image
        rows, its referral (v2) and its device's last-seen time commit in one transaction.
        Per case the result is ``stored`` (new),
        ``duplicate`` (that UUID is stored with the same header) or ``conflict``
        (that UUID is stored with a different header). Raises OSError /
        sqlite3.Error when storage fails; nothing is then half-stored.
        """
        heads = [h.model_dump_json() for h, _, _ in batch]
        shas = [sha256_hex(j.encode()) for j in heads]
        ids = [str(h.case_id) for h, _, _ in batch]
        results: list[SaveResult | None] = [None] * len(batch)
        known = self._stored_headers(sorted(set(ids)))
        new: dict[str, int] = {}
        for i, case_id in enumerate(ids):
            if case_id in known:
                sha, at = known[case_id]
                results[i] = SaveResult("duplicate" if sha == shas[i] else "conflict", case_id, at)
            elif case_id in new:
                first = new[case_id]
                results[i] = SaveResult("duplicate" if shas[first] == shas[i] else "conflict", case_id,
                                        batch[first][2])
            else:
                new[case_id] = i
        if not new:
            discard_staged(staged or {})
            return results  # type: ignore[return-value]
        files: dict[str, bytes] = {}
        for i in new.values():
            header, images, _ = batch[i]
            for meta, data in zip(header.images, images, strict=True):
                files.setdefault(meta.sha256, data)
        self.write_images(files, staged)
        with transaction(self.conn):
            # Re-check inside the write lock: another ingest process may have won the race.
            again = self._stored_headers(list(new))
            rows = []
            for case_id, i in new.items():
                if case_id in again:
                    sha, at = again[case_id]
                    results[i] = SaveResult("duplicate" if sha == shas[i] else "conflict", case_id, at)
                    continue
                header, _, received_at = batch[i]
                rows.append((header, heads[i], shas[i], iso(received_at)))
                results[i] = SaveResult("stored", case_id, received_at)
            self._insert_cases(rows)
        return results  # type: ignore[return-value]

    def _stored_headers(self, case_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        found = {}
        for chunk in range(0, len(case_ids), 500):
            part = case_ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for cid, sha, at in self.conn.execute(
                    f"SELECT case_id, header_sha256, received_at FROM cases WHERE case_id IN ({marks})", part):
                found[cid] = (sha, datetime.fromisoformat(at))
        return found

    def _insert_cases(self, rows: list[tuple[AnyCaseHeader, str, str, str]]) -> None:
        """Insert new cases ``(header, header JSON, its SHA-256, received_at ISO)``, their image rows, their
        referrals and their devices' last-seen times, inside the caller's transaction.

        Plain SQL, multi-row ``INSERT ... VALUES (...), (...)`` per table for the whole batch (see
        :func:`dashboard.store.schema.insert_rows`), not sqlite-utils' insert (which rebuilds the statement per row).
        """
        cases, images, case_images, devices, refs = [], [], [], {}, []
        for header, head_json, head_sha, now in rows:
            case_id = str(header.case_id)
            risk, probs, model = case_risk(header)
            cases.append((
                case_id, header.device_id, header.site, header.seq, header.referral_ref, header.lesion_id,
                header.body_site.value, iso(header.created_at), now, header.software_version,
                header.model_version, risk, json.dumps(probs) if probs is not None else None, model, header.note,
                len(header.images), head_json, head_sha, "new", *referrals.case_columns(header)))
            images += [(meta.sha256, meta.length, meta.width, meta.height, now) for meta in header.images]
            case_images += [(case_id, pos, meta.sha256, meta.view, iso(meta.captured_at),
                             meta.quality.model_dump_json() if meta.quality else None,
                             meta.classification.model_dump_json() if meta.classification else None,
                             *referrals.image_columns(meta))
                            for pos, meta in enumerate(header.images)]
            devices[header.device_id] = (header.device_id, header.site, max(now, devices.get(header.device_id,
                                                                                             ("", "", ""))[2]))
            if isinstance(header, CaseHeaderV2):
                refs.append(referrals.referral_row(header, now))
        insert_rows(self.conn, _INSERT_CASE_HEAD, cases)
        insert_rows(self.conn, "INSERT OR IGNORE INTO images (sha256, size, width, height, stored_at)", images)
        insert_rows(self.conn, _INSERT_IMAGE_HEAD, case_images)
        insert_rows(self.conn, referrals.INSERT_HEAD, refs, referrals.INSERT_TAIL)
        summary.upsert_for_cases(self.conn, [c[0] for c in cases])
        insert_rows(self.conn, TOUCH_DEVICE_HEAD, list(devices.values()), TOUCH_DEVICE_TAIL)

    def load_case(self, case_id: uuid.UUID | str) -> tuple[AnyCaseHeader, list[bytes]] | None:
        """Rebuild a stored case's header (from its columns, referral and image rows) and image bytes; None if absent."""
        case = self.get_case(case_id)
        if case is None:
            return None
        v2 = case["schema_version"] == 2
        metas = []
        for im in case["images"]:
            fields = dict(view=im["view"], captured_at=datetime.fromisoformat(im["captured_at"]),
                          sha256=im["sha256"], length=im["size"], width=im["width"], height=im["height"],
                          quality=im["quality"], classification=im["classification"])
            metas.append(ShotMeta(**fields, **referrals.shot_meta(im)) if v2 else ImageMeta(**fields))
        if v2:
            header = referrals.rebuild_header(case, self.get_referral(case["referral_id"]), metas,
                                              case["classification"])
        else:
            header = CaseHeader(
                case_id=uuid.UUID(case["case_id"]), referral_ref=case["referral_ref"], lesion_id=case["lesion_id"],
                body_site=case["body_site"], site=case["site"], device_id=case["device"],
                created_at=datetime.fromisoformat(case["created_at"]), seq=case["seq"],
                software_version=case["software_version"], model_version=case["model_version"],
                classification=case["classification"], note=case["note"], images=metas)
        return header, [self.read_image(im["sha256"]) for im in case["images"]]

    def get_case(self, case_id: uuid.UUID | str) -> dict | None:
        """One case as a dict with its parsed results and its ``images`` list, or None."""
        try:
            case_id = str(uuid.UUID(str(case_id)))
        except ValueError:
            return None
        rows = list(self.db.query("SELECT * FROM cases WHERE case_id = ?", [case_id]))
        if not rows:
            return None
        case = rows[0]
        case["probabilities"] = json.loads(case["probabilities"]) if case["probabilities"] else None
        header = json.loads(case["header"])
        case["classification"] = (Classification.model_validate(header["classification"])
                                  if header.get("classification") else None)
        case["lesion_history"] = referrals.history_of(case)
        case["images"] = []
        for im in self.db.query(
                "SELECT ci.*, i.size, i.width, i.height FROM case_images ci JOIN images i USING (sha256) "
                "WHERE ci.case_id = ? ORDER BY ci.position", [case_id]):
            im["quality"] = Quality.model_validate_json(im["quality"]) if im["quality"] else None
            im["classification"] = (Classification.model_validate_json(im["classification"])
                                    if im["classification"] else None)
            case["images"].append(im)
        return case

    def get_referral(self, referral_id: str) -> dict | None:
        """A referral (patient, referral, consents, photographer, receive times), or None."""
        return referrals.get_referral(self.conn, referral_id)

    def referral_cases(self, referral_id: str) -> list[dict]:
        """The lesions' cases stored for a referral, by lesion index."""
        return referrals.referral_cases(self.conn, referral_id)

    def list_cases(self, limit: int = 100, offset: int = 0) -> list[dict]:
        """Cases newest first by the centre's receive time (the kiosk clock may be wrong)."""
        rows = self.db.query(
            "SELECT case_id, device, site, seq, referral_ref, lesion_id, body_site, created_at, received_at, "
            "model_version, risk, image_count, status, schema_version, referral_id, full_review FROM cases "
            "ORDER BY received_at DESC, rowid DESC LIMIT ? OFFSET ?", [limit, offset])
        return list(rows)

    def count_cases(self) -> int:
        """How many cases are stored."""
        return self.conn.execute("SELECT count(*) FROM cases").fetchone()[0]

    def image_known(self, sha256: str) -> bool:
        """Whether an image with this hash belongs to a committed case."""
        return self.conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha256,)).fetchone() is not None
