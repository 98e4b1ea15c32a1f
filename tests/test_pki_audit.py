"""Device changes made with the PKI command reach the dashboard's audit log (issue 6)."""

from __future__ import annotations

import sqlite3

from dashboard import audit
from dashboard.pkicli import main as pki_main


def centre_config(tmp_path):
    path = tmp_path / "centre.toml"
    path.write_text(
        "[storage]\n"
        f'database = "{tmp_path}/centre.db"\n'
        f'images_dir = "{tmp_path}/images"\n'
        f'quarantine_dir = "{tmp_path}/quarantine"\n'
        "[web]\n"
        f'secret_key_file = "{tmp_path}/secret"\n'
    )
    return path


def test_issue_and_revoke_are_audited(tmp_path):
    cfg = centre_config(tmp_path)
    pki = tmp_path / "pki"
    assert pki_main(["--dir", str(pki), "init"]) == 0
    assert pki_main(["--dir", str(pki), "issue-kiosk", "kiosk-0042", "--audit-config", str(cfg)]) == 0
    assert pki_main(["--dir", str(pki), "revoke", "kiosk-0042", "--audit-config", str(cfg)]) == 0
    conn = sqlite3.connect(tmp_path / "centre.db")
    rows = audit.entries(conn, action="device.")
    assert [(r["action"], r["target"]) for r in rows] == [("device.revoke", "kiosk-0042"),
                                                          ("device.issue", "kiosk-0042")]
    assert rows[0]["actor"].startswith("cli:") and "serial" in rows[0]["detail"]
    assert audit.verify_chain(conn) is None


def test_without_audit_config_nothing_is_written(tmp_path):
    pki = tmp_path / "pki"
    assert pki_main(["--dir", str(pki), "init"]) == 0
    assert pki_main(["--dir", str(pki), "issue-kiosk", "kiosk-7"]) == 0
    assert not (tmp_path / "centre.db").exists()


def test_bad_audit_config_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\nnot_a_field = 1\n")
    pki = tmp_path / "pki"
    assert pki_main(["--dir", str(pki), "init"]) == 0
    assert pki_main(["--dir", str(pki), "issue-kiosk", "kiosk-8", "--audit-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "storage.not_a_field" in err and "not audited" in err
