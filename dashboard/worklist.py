"""The referral worklist: one row per referral (a patient's lesions together), on the FDS clock.

Order: the most severe lesion first (:mod:`dashboard.store.summary` ``rank``: a
lesion in the cancer tier; then one with no classifier result or needing a full
review, i.e. skin type V-VI or AI refused, which never sorts as benign; then
pre-cancer; then benign), then the clock: the oldest referral date first, then the
first lesion received. Every page reads the summary table through its indexes,
never the cases.

Filters (:class:`Filters`, from the page's query string): status, hub (the
kiosk's site), tier, waiting time (open referrals that waited at least a
warning point, or breached the standard), the Fitzpatrick V-VI flag, and "mine"
(referrals I hold a claim on, or that wait for me as second reader or lead).
Search by NHS number or referral reference (:func:`search`) is a POST, never a
query string, and the view audits each one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone

from wire.referral import IdentifierError, format_nhs_number, normalise_nhs_number, normalise_reference

from . import claims, clock
from .store import summary
from .worklistconfig import WorklistConfig

#: The status filter (``show=``): every open referral, one status, or everything.
STATUS_TABS = {"open": "To read", "to-read": "First read", "second-read": "Second read", "third-read": "Third read",
               "re-image": "Re-image", "reported": "Reported", "all": "All"}
#: Older links (``show=decided``) still land somewhere sensible.
STATUS_ALIASES = {"decided": "reported"}
#: The tier filter: the summary's rank.
TIERS = {"cancer": (0, "Cancer"), "full-review": (1, "Full review / no result"), "pre-cancer": (2, "Pre-cancer"),
         "benign": (3, "Benign")}
RANK_TIER = {rank: key for key, (rank, _) in TIERS.items()}
TIER_NAMES = ("cancer", "pre-cancer", "benign", None)  # the classifier's tier by tier_rank
SEARCH_LIMIT = 100
_COLUMNS = ("referral_key", "schema_version", "site", "device", "reference", "nhs_number", "referral_date", "rank",
            "tier_rank", "full_review", "ai_declined", "fitz_v_vi", "lesion_count", "lesions_received",
            "first_received_at", "status", "closed", "status_at", "assigned_to")
#: The order, satisfied by the summary's indexes (ending in the rowid, so no sort even among ties).
_ORDER = "ORDER BY s.closed, s.rank, s.referral_date, s.first_received_at, s.rowid"
_ORDER_ONE_STATUS = "ORDER BY s.rank, s.referral_date, s.first_received_at, s.rowid"


class SearchError(ValueError):
    """A search text that is neither an NHS number nor a referral reference; ``str()`` says what to type."""


@dataclass(frozen=True)
class Filters:
    """What the worklist shows; the defaults are the reader's queue (every open referral)."""

    show: str = "open"
    hub: str = ""
    tier: str = ""
    #: "" (any), a warning point in days as text ("14"), or "breach".
    waiting: str = ""
    fitz: bool = False
    mine: bool = False
    page: int = 1

    def args(self, **change) -> dict:
        """The query-string arguments of these filters (with ``change`` applied), defaults left out."""
        f = replace(self, **change)
        out = {"show": f.show if f.show != "open" else None, "hub": f.hub or None, "tier": f.tier or None,
               "waiting": f.waiting or None, "fitz": "1" if f.fitz else None, "mine": "1" if f.mine else None,
               "page": f.page if f.page > 1 else None}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def narrowed(self) -> bool:
        """Whether any filter besides the status is set."""
        return bool(self.hub or self.tier or self.waiting or self.fitz or self.mine)


def waiting_options(config: WorklistConfig) -> dict[str, str]:
    """The waiting-time filter's choices: each warning point, then the breach."""
    out = {str(d): f"Waited {d}+ days" for d in config.warn_days}
    out["breach"] = f"Breached ({config.fds_days} days)"
    return out


def parse_filters(args, config: WorklistConfig, hubs: list[str]) -> tuple[Filters, list[str]]:
    """Filters from a query string (``request.args``); a value that is not offered is dropped and named in the
    returned messages, so the page says what it ignored instead of showing a wrong list."""
    problems = []
    show = args.get("show", "open") or "open"
    show = STATUS_ALIASES.get(show, show)
    if show not in STATUS_TABS:
        problems.append(f"Unknown status {show!r}: showing every open referral.")
        show = "open"
    hub = args.get("hub", "") or ""
    if hub and hub not in hubs:
        problems.append(f"No hub called {hub!r}: showing every hub.")
        hub = ""
    tier = args.get("tier", "") or ""
    if tier and tier not in TIERS:
        problems.append(f"Unknown tier {tier!r}: showing every tier.")
        tier = ""
    waiting = args.get("waiting", "") or ""
    if waiting and waiting not in waiting_options(config):
        problems.append(f"Unknown waiting time {waiting!r}: showing any waiting time.")
        waiting = ""
    try:
        page = max(int(args.get("page", 1) or 1), 1)
    except ValueError:
        problems.append("The page number must be a whole number: showing page 1.")
        page = 1
    return Filters(show=show, hub=hub, tier=tier, waiting=waiting, fitz=args.get("fitz") == "1",
                   mine=args.get("mine") == "1", page=page), problems


def _narrowing(f: Filters, user: str, today: date, now: datetime, config: WorklistConfig) -> tuple[list[str], list]:
    """SQL conditions and arguments of every filter except the status."""
    where, args = [], []
    if f.hub:
        where.append("s.site = ?")
        args.append(f.hub)
    if f.tier:
        where.append("s.rank = ?")
        args.append(TIERS[f.tier][0])
    if f.waiting:
        days = config.fds_days + 1 if f.waiting == "breach" else int(f.waiting)
        where.append("s.closed = 0 AND s.referral_date <= ?")
        args.append(clock.waited_since(today, days).isoformat())
    if f.fitz:
        where.append("s.fitz_v_vi = 1")
    if f.mine:
        where.append("(s.referral_key IN (SELECT referral_key FROM claims WHERE holder = ? AND expires_at > ?) "
                     "OR s.assigned_to = ?)")
        args += [user, claims.stamp(now), user]
    return where, args


def _status(f: Filters) -> tuple[list[str], list]:
    if f.show == "open":
        return ["s.closed = 0"], []
    if f.show == "all":
        return [], []
    return ["s.status = ?"], [f.show]


def _where(parts: list[str]) -> str:
    return ("WHERE " + " AND ".join(parts)) if parts else ""


def page(conn: sqlite3.Connection, f: Filters, user: str, config: WorklistConfig,
         now: datetime | None = None) -> list[dict]:
    """One page of the worklist under filters ``f``, for ``user`` ("mine"), each row with its clock and claim."""
    now = now or datetime.now(timezone.utc)
    today = clock.today_in_england(now)
    narrow, args = _narrowing(f, user, today, now, config)
    status, sargs = _status(f)
    order = _ORDER if f.show in ("open", "all") else _ORDER_ONE_STATUS
    sql = (f"SELECT {', '.join('s.' + c for c in _COLUMNS)} FROM referral_summary s {_where(status + narrow)} "
           f"{order} LIMIT ? OFFSET ?")
    rows = [dict(zip(_COLUMNS, r)) for r in conn.execute(sql, [*sargs, *args, config.page_size,
                                                               (f.page - 1) * config.page_size])]
    return decorate(conn, rows, config, now)


def decorate(conn: sqlite3.Connection, rows: list[dict], config: WorklistConfig, now: datetime) -> list[dict]:
    """Add to summary rows what the page shows: the clock, the claim, the lesions and the first lesion's case."""
    today = clock.today_in_england(now)
    held = claims.holders(conn, [r["referral_key"] for r in rows], now)
    lesions = _lesions(conn, rows)
    for r in rows:
        stopped = clock.today_in_england(datetime.fromisoformat(r["status_at"])) if r["closed"] else None
        r["clock"] = clock.fds_clock(date.fromisoformat(r["referral_date"]), today, warn_days=config.warn_days,
                                     fds_days=config.fds_days, stopped_on=stopped)
        r["claim"] = held.get(r["referral_key"])
        r["tier"] = RANK_TIER[r["rank"]]
        r["classifier_tier"] = TIER_NAMES[r["tier_rank"]]
        r["nhs_display"] = format_nhs_number(r["nhs_number"]) if r["nhs_number"] else ""
        r["lesions"] = lesions.get(r["referral_key"], [])
        r["first_case_id"] = r["lesions"][0]["case_id"] if r["lesions"] else None
        # what the page prints, worked out here once rather than by attribute lookups in the template
        c = r["clock"]
        r["clock_text"], r["clock_detail"], r["clock_css"] = c.headline, c.detail, c.css
        r["referred"] = c.referral_date.strftime("%d %b %Y")
        r["lesion_text"] = " · ".join(f"{les['lesion_id']} {les['body_site']}" for les in r["lesions"])
        r["holder"] = r["claim"].holder if r["claim"] else ""
        r["held_until"] = r["claim"].until if r["claim"] else ""
    return rows


def _lesions(conn: sqlite3.Connection, rows: list[dict]) -> dict[str, list[dict]]:
    """The stored lesions of the rows' referrals (label, site, laterality, risk, case id), by lesion index."""
    v2 = [r["referral_key"] for r in rows if r["schema_version"] == 2]
    v1 = [r["referral_key"] for r in rows if r["schema_version"] != 2]
    out: dict[str, list[dict]] = {}
    cols = ("key", "case_id", "lesion_id", "body_site", "laterality", "risk", "full_review")
    for keys, column in ((v2, "referral_id"), (v1, "case_id")):
        if not keys:
            continue
        sql = (f"SELECT coalesce(referral_id, case_id), case_id, lesion_id, body_site, laterality, risk, full_review "
               f"FROM cases WHERE {column} IN ({','.join('?' * len(keys))}) ORDER BY lesion_index, received_at")
        for row in conn.execute(sql, keys):
            d = dict(zip(cols, row))
            out.setdefault(d["key"], []).append(d)
    return out


def counts(conn: sqlite3.Connection, f: Filters, user: str, config: WorklistConfig,
           now: datetime | None = None) -> dict[str, int]:
    """How many referrals each status tab holds under the other filters of ``f``."""
    now = now or datetime.now(timezone.utc)
    if not f.narrowed:
        by_status = summary.status_counts(conn)  # kept by triggers: no count over the whole table
    else:
        narrow, args = _narrowing(f, user, clock.today_in_england(now), now, config)
        by_status = dict(conn.execute(f"SELECT s.status, count(*) FROM referral_summary s {_where(narrow)} "
                                      "GROUP BY s.status", args).fetchall())
    out = {key: by_status.get(key, 0) for key in STATUS_TABS if key in summary.STATUSES}
    out["open"] = sum(n for k, n in by_status.items() if k not in summary.CLOSED_STATUSES)
    out["all"] = sum(by_status.values())
    return out


def clock_alerts(conn: sqlite3.Connection, config: WorklistConfig, now: datetime | None = None) -> dict[str, int]:
    """Open referrals past the standard (``breached``) and past the last warning point (``late``, breaches
    included), over the whole worklist."""
    today = clock.today_in_england(now or datetime.now(timezone.utc))
    last_warning = config.warn_days[-1] if config.warn_days else config.fds_days
    breach_cut = clock.waited_since(today, config.fds_days + 1).isoformat()
    late, breached = conn.execute(
        "SELECT count(*), coalesce(sum(referral_date <= ?), 0) FROM referral_summary "
        "WHERE closed = 0 AND referral_date <= ?",
        (breach_cut, clock.waited_since(today, last_warning).isoformat())).fetchone()
    return {"breached": breached, "late": late, "late_days": last_warning}


def hubs(conn: sqlite3.Connection) -> list[str]:
    """The hubs (kiosk sites) that have sent cases, for the hub filter."""
    return [r[0] for r in conn.execute("SELECT DISTINCT site FROM devices ORDER BY site")]


def search(conn: sqlite3.Connection, text: str, config: WorklistConfig, now: datetime | None = None) -> tuple[str, list[dict]]:
    """Referrals by NHS number or referral reference, newest referral first: ``(kind, rows)``, kind
    ``"NHS number"`` or ``"referral reference"``. :class:`SearchError` says what to type when ``text`` is neither
    (an NHS number with a wrong check digit is named as such)."""
    raw = (text or "").strip()
    if not raw:
        raise SearchError("Type an NHS number (10 digits) or a referral reference to search.")
    compact = raw.replace(" ", "").replace("-", "")
    if compact.isdigit() and len(compact) == 10:
        try:
            digits = normalise_nhs_number(compact)
        except IdentifierError as exc:
            raise SearchError(str(exc)) from None
        kind, where, value = "NHS number", "s.nhs_number = ?", digits
    else:
        try:
            ref, _ = normalise_reference(raw)
        except IdentifierError as exc:
            raise SearchError(f"Not an NHS number (10 digits) or a referral reference: {exc}") from None
        kind, where, value = "referral reference", "s.reference = ? COLLATE NOCASE", ref
    sql = (f"SELECT {', '.join('s.' + c for c in _COLUMNS)} FROM referral_summary s WHERE {where} "
           "ORDER BY s.referral_date DESC, s.first_received_at DESC LIMIT ?")
    rows = [dict(zip(_COLUMNS, r)) for r in conn.execute(sql, (value, SEARCH_LIMIT))]
    return kind, decorate(conn, rows, config, now or datetime.now(timezone.utc))
