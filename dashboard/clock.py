"""The Faster Diagnosis Standard clock of a referral: calendar days to the 28-day standard, working days in England.

The NHS Faster Diagnosis Standard (FDS) asks that a patient referred with a
suspected cancer is told within 28 days of the referral whether cancer is ruled
out. The clock starts on the referral's date (day 0; a version-1 case, which has
no referral date, starts on the day the centre received it) and the deadline is
day 28: a referral still open after that day is a **breach**. Days are counted
in the centre's local calendar (Europe/London).

Beside the calendar days the clock counts **working days** in England: Monday to
Friday, less the bank holidays of the ``holidays`` package (``GB``, subdivision
``ENG``), so that a weekend or Easter does not look like idleness.

Warnings come at configurable points (calendar days waited, ``[worklist] warn_days``,
default 14 and 21): the clock's ``level`` is the number of points passed (0 = on
track), or ``"breach"`` past the deadline. A referral that is reported has its
clock stopped on the day it was reported.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

LONDON = ZoneInfo("Europe/London")
#: The Faster Diagnosis Standard: told within 28 calendar days of the referral.
FDS_DAYS = 28
#: Default warning points, in calendar days waited.
WARN_DAYS = (14, 21)


@lru_cache(maxsize=256)
def _bank_holidays_of(year: int) -> tuple[date, ...]:
    """England's bank holidays in ``year`` that fall on a weekday (Boxing Day on a Saturday is not counted
    twice: its observed Monday is the holiday), sorted."""
    days = holidays.country_holidays("GB", subdiv="ENG", years=year)
    return tuple(sorted(d for d in days if d.weekday() < 5))


def bank_holidays(start: date, end: date) -> list[date]:
    """England's weekday bank holidays ``start`` < day <= ``end``, in order."""
    found: list[date] = []
    for year in range(start.year, end.year + 1):
        days = _bank_holidays_of(year)
        found += days[bisect.bisect_right(days, start):bisect.bisect_right(days, end)]
    return found


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a bank holiday in England."""
    return day.weekday() < 5 and day not in _bank_holidays_of(day.year)


def _weekdays_after(start: date, end: date) -> int:
    """Mondays to Fridays ``start`` < day <= ``end`` (0 when ``end`` <= ``start``)."""
    n = (end - start).days
    if n <= 0:
        return 0
    weeks, rest = divmod(n, 7)
    count = weeks * 5
    first = start.weekday()
    for k in range(1, rest + 1):
        if (first + k) % 7 < 5:
            count += 1
    return count


def working_days_between(start: date, end: date) -> int:
    """Working days in England after ``start`` up to and including ``end`` (0 when ``end`` <= ``start``).

    From a Friday to the next Monday is 1; over a bank-holiday Monday it is 0 until the Tuesday.
    """
    if end <= start:
        return 0
    return _weekdays_after(start, end) - len(bank_holidays(start, end))


def today_in_england(now: datetime | None = None) -> date:
    """Today's date in Europe/London (``now``: an aware datetime, default the system clock)."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(LONDON).date()


@dataclass(frozen=True)
class Clock:
    """Where one referral stands on the FDS clock on ``today`` (or on the day its clock stopped)."""

    referral_date: date
    today: date
    #: Calendar days since the referral (the referral's own day is day 0).
    days: int
    #: Working days in England since the referral.
    working_days: int
    #: The last day of the standard (referral date + 28 days).
    deadline: date
    #: Calendar days left to the deadline (negative: days past it).
    days_left: int
    #: Working days left to the deadline (0 once it is reached).
    working_days_left: int
    #: 0 on track, 1.. the number of warning points passed, or "breach" past the deadline.
    level: int | str
    #: True when the clock stopped (the referral is reported).
    stopped: bool = False

    @property
    def breached(self) -> bool:
        """Past the deadline (for a stopped clock: reported after it)."""
        return self.level == "breach"

    @property
    def css(self) -> str:
        """The CSS class of the clock's badge: ``clock-ok``, ``clock-warn-1``.., ``clock-breach``, ``clock-stopped``."""
        if self.stopped and not self.breached:
            return "clock-stopped"
        if self.level == "breach":
            return "clock-breach"
        return "clock-ok" if self.level == 0 else f"clock-warn-{self.level}"

    @property
    def headline(self) -> str:
        """One short line for a person: ``Day 16 of 28 · 12 days left``, ``BREACHED · day 31, 3 days over``."""
        if self.stopped:
            word = "reported late" if self.breached else "reported"
            return f"{word.capitalize()} on day {self.days}"
        if self.breached:
            over = -self.days_left
            return f"BREACHED · day {self.days}, {over} day{'s' if over != 1 else ''} over"
        if self.days_left == 0:
            return f"Day {self.days} of {self.days + self.days_left} · due today"
        left = self.days_left
        return f"Day {self.days} of {self.days + left} · {left} day{'s' if left != 1 else ''} left"

    @property
    def detail(self) -> str:
        """The working-day count and the deadline, e.g. ``11 working days · due 02 Feb 2026``."""
        wd = f"{self.working_days} working day{'s' if self.working_days != 1 else ''}"
        return f"{wd} · due {self.deadline:%d %b %Y}"


def fds_clock(referral_date: date, today: date | None = None, *, warn_days: tuple[int, ...] | list[int] = WARN_DAYS,
              fds_days: int = FDS_DAYS, stopped_on: date | None = None) -> Clock:
    """The clock of a referral made on ``referral_date``, seen on ``today`` (default: today in England).

    ``stopped_on``: the day the referral was reported; the clock then reads as on that day.
    A referral date in the future (a kiosk's wrong clock) reads as day 0.
    """
    today = stopped_on or today or today_in_england()
    days = max((today - referral_date).days, 0)
    deadline = referral_date + timedelta(days=fds_days)
    days_left = (deadline - today).days
    if days > fds_days:
        level: int | str = "breach"
    else:
        level = sum(1 for point in warn_days if days >= point)
    return Clock(referral_date=referral_date, today=today, days=days,
                 working_days=working_days_between(referral_date, today), deadline=deadline, days_left=days_left,
                 working_days_left=working_days_between(today, deadline), level=level, stopped=stopped_on is not None)


def waited_since(today: date, days: int) -> date:
    """The latest referral date that has waited at least ``days`` calendar days on ``today``."""
    return today - timedelta(days=days)
