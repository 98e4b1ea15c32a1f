"""The hand-over's command line, run as a trust's integration engineer would (subprocesses, a real config file
and SQLite store): ``sample --signed`` prints N references; ``export dicom`` writes .dcm files named by UID
that pydicom reads and a second run rewrites identically; ``export fhir`` prints a Bundle fhir.resources
parses; an unknown or unsigned referral exits 1 with one line saying why; every export is audited."""

from __future__ import annotations

import subprocess
import sys

import pydicom
from fhir.resources.R4B.bundle import Bundle

from dashboard import audit, sample
from tests.hospital_kit import open_store

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_sample_export_dicom_and_fhir(tmp_path):
    conf = tmp_path / "centre.toml"
    conf.write_text(f'[storage]\ndatabase = "{tmp_path}/c.db"\nimages_dir = "{tmp_path}/images"\n'
                    f'quarantine_dir = "{tmp_path}/quarantine"\n')
    r = run("sample", "--config", str(conf), "--referrals", "2", "--signed")
    assert r.returncode == 0, r.stderr
    refs = r.stdout.split()
    assert len(refs) == 2 and all(ref.isdigit() and len(ref) == 12 for ref in refs)
    r = run("export", "dicom", "--config", str(conf), "--referral", refs[0], "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    paths = [p for p in r.stdout.split()]
    assert len(paths) == 6 and all(p.endswith(".dcm") and "/2.25." in p for p in paths)
    first = {p: open(p, "rb").read() for p in paths}
    assert pydicom.dcmread(paths[0]).AccessionNumber == refs[0]
    r = run("export", "dicom", "--config", str(conf), "--referral", refs[0], "--out", str(tmp_path / "out"))
    assert {p: open(p, "rb").read() for p in r.stdout.split()} == first  # the same files again
    r = run("export", "fhir", "--config", str(conf), "--referral", refs[1])
    assert r.returncode == 0, r.stderr
    Bundle.model_validate_json(r.stdout)
    # unknown and unsigned referrals: exit 1, one line
    r = run("export", "fhir", "--config", str(conf), "--referral", "999999999999")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["export fhir: no referral with that reference at this centre"]
    store = open_store(tmp_path)
    try:
        [(h, ims)] = sample.make_referral(81, lesions=1)
        store.save_case(h, ims)
        r = run("export", "dicom", "--config", str(conf), "--referral", h.referral.reference, "--out",
                str(tmp_path / "x"))
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
        assert "is not signed off yet" in r.stderr and not (tmp_path / "x").exists()
        assert h.patient.nhs_number not in r.stderr
        actions = [e["action"] for e in audit.entries(store.conn) if e["action"].startswith("export.")]
        assert actions.count("export.dicom") == 2 and actions.count("export.fhir") == 1
        assert actions.count("export.fhir.refused") == 1 and actions.count("export.dicom.refused") == 1
    finally:
        store.close()
    r = run("export", "fhir", "--config", str(tmp_path / "missing.toml"), "--referral", refs[0])
    assert r.returncode == 2
