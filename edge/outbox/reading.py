"""Reading the outbox: case rows, counts, a case's header, images and wire frame (a mixin of Outbox)."""

from __future__ import annotations

import sqlite3

from wire.codec import encode_case, sha256_hex
from wire.referral import AnyCaseHeader

from .errors import CaseDataError
from .schema import PENDING, STATES, WAITING, OutboxCase


class OutboxReader:
    """The read side of :class:`edge.outbox.Outbox` (uses its ``_db``, ``_lock`` and sealing helpers)."""

    def _row(self, row: sqlite3.Row) -> OutboxCase:
        return OutboxCase(
            seq=row["seq"], case_id=row["case_id"], state=row["state"], reason=row["reason"],
            attempts=row["attempts"], n_images=row["n_images"], jpeg_bytes=row["jpeg_bytes"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )

    def get(self, case_id: str) -> OutboxCase | None:
        """The case with this id, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM cases WHERE case_id=?", (str(case_id),)).fetchone()
        return self._row(row) if row else None

    def cases(self, states: tuple[str, ...] = STATES, limit: int = 1000) -> list[OutboxCase]:
        """Cases in the given states, in ``seq`` order."""
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM cases WHERE state IN ({marks}) ORDER BY seq LIMIT ?", (*states, limit)
            ).fetchall()
        return [self._row(r) for r in rows]

    def pending(self, limit: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[OutboxCase]:
        """Up to ``limit`` cases still to publish (queued or sent-not-delivered), oldest ``seq`` first."""
        out: list[OutboxCase] = []
        for case in self.cases(PENDING, limit + len(exclude)):
            if case.case_id not in exclude:
                out.append(case)
                if len(out) >= limit:
                    break
        return out

    def header(self, case_id: str) -> AnyCaseHeader:
        """The stored header of a case (not available once purged)."""
        with self._lock:
            row = self._db.execute("SELECT header FROM cases WHERE case_id=?", (str(case_id),)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"no stored header for case {case_id}")
        return self._open_header(str(case_id), row[0])

    def images(self, case_id: str) -> list[bytes]:
        """The image bytes of a case in header order; CaseDataError if a file is missing or altered."""
        header = self.header(case_id)
        out = []
        for meta in header.images:
            data = self._read_image(meta.sha256)
            if sha256_hex(data) != meta.sha256:
                raise CaseDataError(f"image file {meta.sha256[:12]} does not match its hash")
            out.append(data)
        return out

    def payload(self, case_id: str) -> bytes:
        """The wire frame (wire.codec) of a stored case, ready to publish.

        Raises CaseDataError when an image file is missing or altered (hashed once, by the codec).
        """
        header = self.header(case_id)
        images = [self._read_image(meta.sha256) for meta in header.images]
        try:
            return encode_case(header, images)
        except ValueError:
            raise CaseDataError("an image file does not match its hash") from None

    def counts(self) -> dict[str, int]:
        """Number of cases in each state (every state present, zero if none)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM cases GROUP BY state").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({r[0]: r[1] for r in rows})
        return out

    def queue_depth(self) -> int:
        """Cases not yet acknowledged by the centre (captured + queued + sent)."""
        c = self.counts()
        return sum(c[s] for s in WAITING)
