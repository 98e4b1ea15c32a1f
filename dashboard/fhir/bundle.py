"""The FHIR R4 transaction Bundle of one signed referral, validated with ``fhir.resources``.

Entries: Patient (conditional create by NHS number), the referring practice (Organization), the
ServiceRequest (the GP referral), a BodyStructure per lesion, the ImagingStudy (the DICOM study, by
its UIDs), the classifier Device and one Observation per lesion of its output, each signing reader
(Practitioner), one finding Observation per lesion and the DiagnosticReport: status ``final``, or
``amended`` once an addendum follows a signed report. Everything but the Patient is ``PUT`` at a
stable id, so the same referral sent again updates rather than duplicates.

Validation: the models of ``fhir.resources.R4B`` (FHIR 4.3, the R4 line; the resources used here
are unchanged from 4.0.1). A Bundle that does not validate is a bug: :func:`build_bundle` raises.
"""

from __future__ import annotations

import json

from fhir.resources.R4B.bundle import Bundle

from ..exportfacts import ExportReferral
from wire.outcome import MANAGEMENT
from . import resources as res


def _entry(resource: dict, *, conditional: str | None = None) -> dict:
    kind, rid = resource["resourceType"], resource["id"]
    request = {"method": "PUT", "url": f"{kind}/{rid}"}
    if conditional:
        request = {"method": "POST", "url": kind, "ifNoneExist": conditional}
    return {"fullUrl": f"urn:uuid:{rid}", "resource": resource, "request": request}


def report(r: ExportReferral, did: str, patient_id: str, request_id: str, study_id: str, findings: list[str],
           reader_ids: dict[str, str]) -> dict:
    """The DiagnosticReport: per lesion the diagnosis and management, the signers as performers."""
    s = r.signed
    lines = []
    for les in s.lesions:
        lines.append(f"{les.label} ({les.where}): {les.diagnosis_name}. Management: {MANAGEMENT[les.management]}."
                     + (f" {les.text}" if les.text else ""))
        lines += [f"  Addendum by {a['author']} at {a['added_at']}: {a['text']}" for a in les.addenda]
    amended = r.addenda > 0
    issued = max([s.signed_at.isoformat()] + [a["added_at"] for les in s.lesions for a in les.addenda])
    return {"resourceType": "DiagnosticReport", "id": did, "meta": res._meta("DiagnosticReport"),
            "identifier": [{"system": f"{res.LOCAL}report", "value": s.key}],
            "basedOn": [res.ref("ServiceRequest", request_id)], "status": "amended" if amended else "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "OTH",
                                      "display": "Other"}], "text": "Dermatology"}],
            "code": {"coding": [{"system": res.codes.SNOMED_SYSTEM, "code": "371530004",
                                 "display": "Clinical consultation report"}], "text": "Teledermatology report"},
            "subject": res.ref("Patient", patient_id), "effectiveDateTime": s.signed_at.isoformat(),
            "issued": issued, "performer": [res.ref("Practitioner", p) for p in reader_ids.values()],
            "imagingStudy": [res.ref("ImagingStudy", study_id)],
            "result": [res.ref("Observation", f) for f in findings], "conclusion": "\n".join(lines)}


def build_bundle(r: ExportReferral, *, endpoint: str | None = None) -> Bundle:
    """The validated transaction Bundle of signed referral ``r`` (``endpoint``: the PACS's DICOMweb root)."""
    key, s = r.key, r.signed
    pid, sid, iid, did = (res.rid(key, k) for k in ("patient", "service-request", "imaging-study", "report"))
    oid = res.rid(key, "practice") if s.practice_ods else None
    readers = {u: res.rid("reader", u) for u in s.readers}
    entries = [_entry(res.patient(r, pid), conditional=f"identifier={res.NHS_NUMBER_SYSTEM}|{s.nhs_number}")]
    if oid:
        entries.append(_entry(res.practice(r, oid)))
    entries.append(_entry(res.service_request(r, sid, pid, oid)))
    bodies = {les.case_id: res.rid(key, "lesion", les.case_id) for les in r.lesions}
    entries += [_entry(res.body_structure(les, bodies[les.case_id], pid)) for les in r.lesions]
    entries.append(_entry(res.imaging_study(r, iid, pid, sid, endpoint)))
    if endpoint:
        entries.append(_entry(res.endpoint_resource(endpoint, res.rid(key, "endpoint"))))
    for model in dict.fromkeys(les.model for les in r.lesions if les.model):
        entries.append(_entry(res.model_device(model, res.rid("model", model))))
    for les in r.lesions:
        if les.model and les.probabilities:
            entries.append(_entry(res.classifier_observation(r, les, res.rid(key, "classifier", les.case_id), pid,
                                                             bodies[les.case_id], res.rid("model", les.model), iid)))
    entries += [_entry(res.reader(u, p)) for u, p in readers.items()]
    findings = []
    for n, les in enumerate(s.lesions):
        fid = res.rid(key, "finding", les.case_id)
        findings.append(fid)
        entries.append(_entry(res.finding(r, n, fid, pid, bodies[les.case_id], readers[les.reader])))
    entries.append(_entry(report(r, did, pid, sid, iid, findings, readers)))
    return Bundle.model_validate({"resourceType": "Bundle", "id": res.rid(key, "bundle"), "type": "transaction",
                                  "entry": entries})


def bundle_json(r: ExportReferral, *, endpoint: str | None = None) -> str:
    """The Bundle as indented JSON (what ``export fhir`` prints and the referral page offers)."""
    return json.dumps(json.loads(build_bundle(r, endpoint=endpoint).model_dump_json(exclude_none=True)), indent=2)
