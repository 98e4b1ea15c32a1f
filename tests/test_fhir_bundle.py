"""The FHIR R4 transaction Bundle of a signed referral (dashboard.fhir) and its POST to a FHIR server.

Every Bundle parses with fhir.resources; the resources say what the issue asks (NHS number system, UK Core
profiles, a BodyStructure per lesion, the classifier's Observation made by the model Device and kept out of
the DiagnosticReport's results, the signer as performer, final then amended after an addendum with the same
resource ids); the POST goes to a tiny real HTTP server in the test that answers 201, 4xx or 5xx as told:
a 5xx or 4xx gives a failed state with the server's reason and a retry after recovery delivers; a referral
without NHS number gets a clear state and is never POSTed.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fhir.resources.R4B.bundle import Bundle

from dashboard import fhir, pacs
from dashboard.exportfacts import export_facts
from dashboard.fhir import resources as res
from dashboard.hospitalconfig import FhirConfig
from dashboard.store import exports as table
from tests.hospital_kit import add_addendum, open_store, signed_referral


class FhirServer:
    """A local HTTP server that records each POSTed body and answers with the next status of ``answers``."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.answers: list[int] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(json.loads(body))
                outer.auth.append(self.headers.get("Authorization"))
                status = outer.answers.pop(0) if outer.answers else 200
                answer = {"resourceType": "Bundle", "type": "transaction-response"} if status < 400 else {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "invalid", "diagnostics": f"test server says {status}"}]}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path)
    yield s
    s.close()


@pytest.fixture
def server():
    s = FhirServer()
    yield s
    s.close()


def by_type(bundle: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in bundle["entry"]:
        out.setdefault(e["resource"]["resourceType"], []).append(e)
    return out


def test_bundle_parses_and_carries_the_referral(store):
    key, cases = signed_referral(store, seed=61, lesions=2)
    text = fhir.bundle_json(export_facts(store.conn, store.images_dir, key), endpoint="http://pacs/dicom-web")
    Bundle.model_validate_json(text)  # parses with fhir.resources
    bundle = json.loads(text)
    assert bundle["type"] == "transaction"
    t = by_type(bundle)
    h = cases[0][0]
    [patient] = t["Patient"]
    ident = patient["resource"]["identifier"][0]
    assert (ident["system"], ident["value"]) == ("https://fhir.nhs.uk/Id/nhs-number", h.patient.nhs_number)
    assert patient["request"] == {"method": "POST", "url": "Patient",
                                  "ifNoneExist": f"identifier=https://fhir.nhs.uk/Id/nhs-number|{h.patient.nhs_number}"}
    assert patient["resource"]["birthDate"] == h.patient.date_of_birth.isoformat()
    for kind in ("Patient", "ServiceRequest", "BodyStructure", "ImagingStudy", "DiagnosticReport", "Observation"):
        for e in t[kind]:
            assert e["resource"]["meta"]["profile"] == [f"https://fhir.hl7.org.uk/StructureDefinition/UKCore-{kind}"]
    [sr] = t["ServiceRequest"]
    assert {"system": "https://fhir.nhs.uk/Id/UBRN", "value": h.referral.reference} in sr["resource"]["identifier"]
    assert len(t["BodyStructure"]) == 2
    sites = {e["resource"]["identifier"][0]["value"]: e["resource"] for e in t["BodyStructure"]}
    for hh, _ in cases:
        body = sites[str(hh.case_id)]
        assert body["location"]["coding"][0]["system"] == "http://snomed.info/sct"
    [study] = t["ImagingStudy"]
    from dashboard.dicom import uids
    assert study["resource"]["identifier"][0]["value"] == f"urn:oid:{uids.study_uid(key)}"
    assert study["resource"]["numberOfInstances"] == 6 and study["resource"]["numberOfSeries"] == 6
    [device] = t["Device"]
    assert device["resource"]["version"][0]["value"] == h.classification.model
    [report] = t["DiagnosticReport"]
    r = report["resource"]
    assert r["status"] == "final" and r["performer"] == [{"reference": f"urn:uuid:{res.rid('reader', 'dr.sign')}",
                                                          "type": "Practitioner"}]
    observations = {e["fullUrl"]: e["resource"] for e in t["Observation"]}
    results = {x["reference"] for x in r["result"]}
    assert len(results) == 2
    classifier = [o for o in observations.values() if "device" in o]
    assert len(classifier) == 2 and all(o["device"]["reference"] == device["fullUrl"] for o in classifier)
    assert not results & {f"urn:uuid:{o['id']}" for o in classifier}  # the classifier is not a finding
    assert all("performer" in observations[u] for u in results)
    assert h.patient.nhs_number not in json.dumps([e["request"] for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"])


def test_addendum_makes_the_report_amended_with_the_same_resources(store, server):
    cfg = FhirConfig(enabled=True, url=server.url, retry_s=0.1, retry_max_s=0.2)
    key, cases = signed_referral(store, seed=62, lesions=1)
    pacs.queue_referral(store.conn, key, None, cfg)
    assert pacs.flush(store.conn, store.images_dir, None, cfg) == {(key, "fhir"): "sent"}
    add_addendum(store, key, str(cases[0][0].case_id), "dr.sign", "Histology: compound naevus, fully excised.")
    assert pacs.flush(store.conn, store.images_dir, None, cfg) == {(key, "fhir"): "sent"}
    assert pacs.flush(store.conn, store.images_dir, None, cfg) == {}
    first, second = server.bodies
    Bundle.model_validate(second)
    ids = lambda b: sorted((e["request"]["method"], e["request"]["url"]) for e in b["entry"])  # noqa: E731
    assert ids(first) == ids(second)  # the same resources, updated (PUT), none added
    [r1], [r2] = by_type(first)["DiagnosticReport"], by_type(second)["DiagnosticReport"]
    assert (r1["resource"]["status"], r2["resource"]["status"]) == ("final", "amended")
    assert "Histology: compound naevus" in r2["resource"]["conclusion"]
    assert table.get(store.conn, key, "fhir")["detail"].startswith("Bundle delivered, report amended")


@pytest.mark.parametrize("status", [503, 422])
def test_endpoint_error_fails_with_its_reason_then_retry_delivers(store, server, status, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    cfg = FhirConfig(enabled=True, url=server.url, retry_s=0.1, retry_max_s=0.2, token_file=token)
    key, cases = signed_referral(store, seed=63, lesions=1)
    server.answers = [status]
    pacs.queue_referral(store.conn, key, None, cfg)
    pacs.flush(store.conn, store.images_dir, None, cfg)
    row = table.get(store.conn, key, "fhir")
    assert row["state"] == "failed" and f"HTTP {status}" in row["reason"] and f"test server says {status}" in row["reason"]
    assert row["next_try_at"] and cases[0][0].patient.nhs_number not in row["reason"]
    time.sleep(0.25)
    assert pacs.flush(store.conn, store.images_dir, None, cfg) == {(key, "fhir"): "sent"}
    assert len(server.bodies) == 2 and server.bodies[0] == server.bodies[1]
    assert server.auth == ["Bearer s3cret-token"] * 2


def test_unreachable_endpoint_and_patient_without_nhs_number(store):
    from dashboard import sample, samplesigned
    cfg = FhirConfig(enabled=True, url="http://127.0.0.1:9/fhir", retry_s=0.1, timeout_s=2)
    key, _ = signed_referral(store, seed=64, lesions=1)
    pacs.queue_referral(store.conn, key, None, cfg)
    pacs.flush(store.conn, store.images_dir, None, cfg)
    assert "cannot be reached" in table.get(store.conn, key, "fhir")["reason"]
    header, images = sample.make_case(65)
    store.save_case(header, images)
    v1 = str(header.case_id)
    samplesigned.sign_referral(store.conn, v1, "dr.sign")
    pacs.queue_referral(store.conn, v1, None, cfg)
    pacs.flush(store.conn, store.images_dir, None, cfg)
    row = table.get(store.conn, v1, "fhir")
    assert row["state"] == "failed" and row["next_try_at"] is None
    assert row["reason"] == (f"referral {v1} has no NHS number (a version-1 case): the hospital cannot file it under "
                             "a patient; hand it over by hand")
