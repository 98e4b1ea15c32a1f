"""The demo's seeded referrals and kiosk roster (demokit): the cases a dermatologist should see, stored once."""

from __future__ import annotations

from dashboard.store import Store
from demokit.accounts import DEMO_PIN, DEMO_STAFF, ensure_demo_staff
from demokit.seed import seed_referrals
from wire.staff import StaffRoster


def test_seeded_referrals_cover_skin_type_v_ai_declined_multi_lesion_and_override_once(tmp_path):
    args = (tmp_path / "c.db", tmp_path / "images", tmp_path / "q", "demo-hub", "kiosk-demo-1")
    n, stored = seed_referrals(*args)
    assert n == 5 and stored == 7
    assert seed_referrals(*args) == (5, 0)  # a second start stores nothing new
    s = Store(*args[:3])
    try:
        c = s.conn
        assert c.execute("SELECT count(*) FROM referrals WHERE fitzpatrick IN ('V', 'VI')").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM cases WHERE ai = 'declined' AND risk IS NULL").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM referrals WHERE lesion_count > 1").fetchone()[0] == 2
        assert c.execute("SELECT count(*) FROM case_images WHERE override_reason IS NOT NULL").fetchone()[0] == 1
        nhs = [r[0] for r in c.execute("SELECT nhs_number FROM referrals")]
        assert len(set(nhs)) == 5 and all(x.startswith("9") for x in nhs)  # synthetic range only
        assert {d["device"] for d in s.list_devices()} == {"kiosk-demo-1"}  # the kiosk the roster goes to
    finally:
        s.close()


def test_demo_staff_roster_file_for_the_kiosk(tmp_path):
    conf = tmp_path / "centre.toml"
    conf.write_text(f'[storage]\ndatabase = "{tmp_path / "c.db"}"\nimages_dir = "{tmp_path / "images"}"\n'
                    f'quarantine_dir = "{tmp_path / "q"}"\n[web]\nsecret_key_file = "{tmp_path / "secret"}"\n')
    roster_file = tmp_path / "staff.json"
    ensure_demo_staff(conf, roster_file)
    first = StaffRoster.model_validate_json(roster_file.read_bytes())
    ensure_demo_staff(conf, roster_file)  # every start re-sets it: unchanged, the same hash (not "changed")
    roster = StaffRoster.model_validate_json(roster_file.read_bytes())
    assert roster.staff == first.staff
    [member] = roster.staff
    assert member.staff_id == DEMO_STAFF[0] and member.check_pin(DEMO_PIN)
