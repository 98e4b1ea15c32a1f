"""The referral's FDS clock (dashboard.clock): calendar days to the 28-day standard and working days in England,
across Easter's bank holidays, a weekend, Christmas's observed Boxing Day, warnings and the breach."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import holidays
import pytest
from hypothesis import given, settings, strategies as st

from dashboard import clock
from dashboard.config import CentreConfig
from wire.tomlconfig import ConfigError


def test_easter_bank_holidays_and_the_weekend_are_not_working_days():
    thursday = date(2026, 4, 2)  # Good Friday 3 Apr, Sat 4, Sun 5, Easter Monday 6 Apr 2026
    assert [clock.working_days_between(thursday, thursday + timedelta(days=n)) for n in range(6)] == \
        [0, 0, 0, 0, 0, 1]
    assert not clock.is_working_day(date(2026, 4, 3)) and not clock.is_working_day(date(2026, 4, 6))
    assert not clock.is_working_day(date(2026, 4, 4)) and clock.is_working_day(date(2026, 4, 7))
    c = clock.fds_clock(thursday, date(2026, 4, 7))
    assert (c.days, c.working_days, c.days_left, c.level) == (5, 1, 23, 0)
    assert c.deadline == date(2026, 4, 30)
    # the 28 calendar days after 2 April hold 18 working days in England (20 weekdays less two bank holidays)
    assert c.working_days + c.working_days_left == 18
    assert clock.bank_holidays(thursday, c.deadline) == [date(2026, 4, 3), date(2026, 4, 6)]


def test_a_plain_weekend_and_christmas_with_boxing_day_observed():
    friday = date(2026, 5, 15)
    assert clock.working_days_between(friday, date(2026, 5, 17)) == 0   # Saturday, Sunday
    assert clock.working_days_between(friday, date(2026, 5, 18)) == 1   # Monday
    # 25 Dec 2026 is a Friday, Boxing Day a Saturday: its observed holiday is Monday 28 Dec
    assert clock.working_days_between(date(2026, 12, 24), date(2026, 12, 29)) == 1
    assert clock.bank_holidays(date(2026, 12, 24), date(2027, 1, 4)) == \
        [date(2026, 12, 25), date(2026, 12, 28), date(2027, 1, 1)]
    # the late May bank holiday: a Friday referral counts its first working day on the Tuesday
    assert clock.working_days_between(date(2026, 5, 22), date(2026, 5, 25)) == 0
    assert clock.working_days_between(date(2026, 5, 22), date(2026, 5, 26)) == 1


def _naive_working_days(start: date, end: date) -> int:
    days = holidays.country_holidays("GB", subdiv="ENG", years=range(start.year, end.year + 1))
    n, d = 0, start + timedelta(days=1)
    while d <= end:
        n += d.weekday() < 5 and d not in days
        d += timedelta(days=1)
    return n


@settings(max_examples=300, deadline=None)
@given(st.dates(date(2023, 1, 1), date(2028, 12, 31)), st.integers(0, 400))
def test_working_days_match_a_day_by_day_count(start, span):
    end = start + timedelta(days=span)
    assert clock.working_days_between(start, end) == _naive_working_days(start, end)


def test_warnings_at_the_configured_points_then_the_breach():
    ref = date(2026, 3, 2)
    levels = {n: clock.fds_clock(ref, ref + timedelta(days=n)).level for n in (0, 13, 14, 20, 21, 28, 29)}
    assert levels == {0: 0, 13: 0, 14: 1, 20: 1, 21: 2, 28: 2, 29: "breach"}
    due = clock.fds_clock(ref, ref + timedelta(days=28))
    assert due.headline == "Day 28 of 28 · due today" and not due.breached and due.css == "clock-warn-2"
    late = clock.fds_clock(ref, ref + timedelta(days=31))
    assert late.breached and late.headline == "BREACHED · day 31, 3 days over" and late.css == "clock-breach"
    assert late.days_left == -3 and late.working_days_left == 0
    early = clock.fds_clock(ref, ref + timedelta(days=3), warn_days=(2,))
    assert early.level == 1 and early.css == "clock-warn-1" and early.headline == "Day 3 of 28 · 25 days left"
    assert early.detail == "3 working days · due 30 Mar 2026"
    # a stopped clock reads as on the day the referral was reported
    done = clock.fds_clock(ref, date(2026, 6, 1), stopped_on=ref + timedelta(days=10))
    assert done.stopped and done.days == 10 and done.headline == "Reported on day 10" and done.css == "clock-stopped"
    # a referral dated in the future by a kiosk's wrong clock reads as day 0, not negative
    assert clock.fds_clock(ref, ref - timedelta(days=2)).days == 0


def test_today_is_the_london_date():
    # 23:30 UTC on 31 May 2026 is 00:30 on 1 June in London (BST)
    assert clock.today_in_england(datetime(2026, 5, 31, 23, 30, tzinfo=timezone.utc)) == date(2026, 6, 1)
    assert clock.today_in_england(datetime(2026, 1, 31, 23, 30, tzinfo=timezone.utc)) == date(2026, 1, 31)


def test_worklist_config_section(tmp_path):
    assert CentreConfig().worklist.warn_days == (14, 21) and CentreConfig().worklist.claim_minutes == 20
    from dashboard.config import load_config

    path = tmp_path / "c.toml"
    path.write_text("[worklist]\nwarn_days = [7, 21, 25]\nclaim_minutes = 45\n")
    cfg = load_config(path).worklist
    assert cfg.warn_days == (7, 21, 25) and cfg.claim_minutes == 45
    for bad, words in (("warn_days = [21, 14]", "increasing"), ("warn_days = [14, 40]", "within fds_days"),
                       ("claim_minutes = 0", "greater than or equal")):
        path.write_text(f"[worklist]\n{bad}\n")
        with pytest.raises(ConfigError, match=words):
            load_config(path)
