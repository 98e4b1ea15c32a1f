"""The FHIR resources of a signed referral, as plain dicts (:mod:`.bundle` puts them in a transaction Bundle).

UK Core profile names (``https://fhir.hl7.org.uk/StructureDefinition/UKCore-<Type>``) are declared
in ``meta.profile`` for every resource type UK Core profiles. Every resource id is a name-based UUID
of the referral key (and lesion), so sending the referral again (after an addendum) updates the
same resources instead of adding new ones; the Patient is created only if the server has none with
that NHS number (conditional create), since the hospital's own record of the patient wins.

The classifier's output is an Observation of its own, made by a Device (the model version), never
among the DiagnosticReport's results: the report holds the signing dermatologists' findings only.
"""

from __future__ import annotations

import uuid

from ..dicom import codes, uids
from ..dicom.objects import SOP_OF_VIEW
from ..exportfacts import ExportLesion, ExportReferral
from wire.outcome import MANAGEMENT

UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
UBRN_SYSTEM = "https://fhir.nhs.uk/Id/UBRN"
#: The centre's own identifiers (referral and lesion UUIDs, local references, reader user names).
LOCAL = "https://dermkiosk.example/Id/"
DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
VERIFICATION_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
VERIFICATION_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
GENDER = {"female": "female", "male": "male", "indeterminate": "other", "not-known": "unknown"}
#: FHIR resource ids are name-based UUIDs in this namespace.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/dermkiosk/dermkiosk/fhir-id")


def rid(*parts: str) -> str:
    """A stable resource id from what the resource is about (same referral, same id)."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def ref(resource_type: str, resource_id: str) -> dict:
    """A reference to a resource of the Bundle by its full URL."""
    return {"reference": f"urn:uuid:{resource_id}", "type": resource_type}


def coding(code: codes.Code) -> dict:
    """A FHIR Coding of a DICOM code triple (SNOMED CT for ``SCT``, the DICOM ontology for ``DCM``)."""
    value, scheme, meaning = code
    system = {"SCT": codes.SNOMED_SYSTEM, "DCM": DCM}[scheme]
    return {"system": system, "code": value, "display": meaning}


def _meta(kind: str) -> dict:
    return {"profile": [f"{UK_CORE}{kind}"]}


def patient(r: ExportReferral, pid: str) -> dict:
    """The Patient: NHS number (with the UK Core verification status: present, not traced), birth date, gender."""
    s = r.signed
    out = {"resourceType": "Patient", "id": pid, "meta": _meta("Patient"),
           "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": s.nhs_number, "extension": [{
               "url": VERIFICATION_EXT, "valueCodeableConcept": {"coding": [{
                   "system": VERIFICATION_SYSTEM, "code": "02", "display": "Number present but not traced"}]}}]}]}
    if s.date_of_birth:
        out["birthDate"] = s.date_of_birth.isoformat()
    if r.sex:
        out["gender"] = GENDER.get(r.sex, "unknown")
    return out


def practice(r: ExportReferral, oid: str) -> dict:
    """The referring GP practice, by its ODS code."""
    ods = r.signed.practice_ods
    return {"resourceType": "Organization", "id": oid, "meta": _meta("Organization"),
            "identifier": [{"system": ODS_SYSTEM, "value": ods}], "name": f"GP practice {ods}"}


def reader(username: str, pid: str) -> dict:
    """A signing dermatologist as a Practitioner (the centre's user name as identifier)."""
    return {"resourceType": "Practitioner", "id": pid, "meta": _meta("Practitioner"),
            "identifier": [{"system": f"{LOCAL}reader", "value": username}], "name": [{"text": username}]}


def service_request(r: ExportReferral, sid: str, patient_id: str, practice_id: str | None) -> dict:
    """The GP's referral: its reference (e-RS UBRN or local), date, requester, and the lesions' sites."""
    s = r.signed
    system = UBRN_SYSTEM if s.reference.isdigit() and len(s.reference) == 12 else f"{LOCAL}referral-reference"
    out = {"resourceType": "ServiceRequest", "id": sid, "meta": _meta("ServiceRequest"),
           "identifier": [{"system": system, "value": s.reference},
                          {"system": f"{LOCAL}referral", "value": str(s.referral_id)}],
           "status": "completed", "intent": "order",
           "code": {"text": "Teledermatology assessment of skin lesions"},
           "subject": ref("Patient", patient_id), "authoredOn": s.referral_date.isoformat(),
           "bodySite": [{"coding": [coding(codes.site_code(les.body_site, les.detail)[0])], "text": les.label}
                        for les in r.lesions]}
    if practice_id:
        out["requester"] = ref("Organization", practice_id)
    return out


def body_structure(lesion: ExportLesion, bid: str, patient_id: str) -> dict:
    """One lesion: its coded site and laterality (and the photographer's finer label)."""
    region, modifier = codes.site_code(lesion.body_site, lesion.detail)
    qualifiers = [coding(q) for q in (modifier, codes.laterality_code(lesion.laterality)) if q]
    out = {"resourceType": "BodyStructure", "id": bid, "meta": _meta("BodyStructure"),
           "identifier": [{"system": f"{LOCAL}lesion", "value": lesion.case_id}],
           "location": {"coding": [coding(region)], "text": lesion.body_site},
           "description": f"{lesion.label}: {lesion.detail}" if lesion.detail else lesion.label,
           "patient": ref("Patient", patient_id)}
    if qualifiers:
        out["locationQualifier"] = [{"coding": [q]} for q in qualifiers]
    return out


def imaging_study(r: ExportReferral, iid: str, patient_id: str, request_id: str, endpoint: str | None) -> dict:
    """The DICOM study (one per referral): every series (lesion and view) and instance by its UID."""
    series = []
    for les in r.lesions:
        region = codes.site_code(les.body_site, les.detail)[0]
        side = codes.laterality_code(les.laterality)
        for view in dict.fromkeys(im.view for im in les.images):
            sop_class, modality = SOP_OF_VIEW[view]
            item = {"uid": uids.series_uid(les.case_id, view), "modality": {"system": DCM, "code": modality},
                    "description": f"{les.label} {view}", "bodySite": coding(region),
                    "instance": [{"uid": uids.instance_uid(les.case_id, im.position, im.sha256),
                                  "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop_class}"},
                                  "number": im.position + 1}
                                 for im in les.images if im.view == view]}
            if side and les.laterality in ("left", "right"):
                item["laterality"] = coding(side)
            item["numberOfInstances"] = len(item["instance"])
            series.append(item)
    out = {"resourceType": "ImagingStudy", "id": iid, "meta": _meta("ImagingStudy"),
           "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uids.study_uid(r.key)}"}],
           "status": "available", "subject": ref("Patient", patient_id), "basedOn": [ref("ServiceRequest", request_id)],
           "started": min(im.captured_at for les in r.lesions for im in les.images).isoformat(),
           "numberOfSeries": len(series), "numberOfInstances": sum(s["numberOfInstances"] for s in series),
           "description": "Teledermatology referral", "series": series}
    if endpoint:
        out["endpoint"] = [ref("Endpoint", rid(r.key, "endpoint"))]
    return out


def endpoint_resource(url: str, eid: str) -> dict:
    """The PACS's DICOMweb endpoint the ImagingStudy can be fetched from."""
    return {"resourceType": "Endpoint", "id": eid, "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                               "code": "dicom-wado-rs"},
            "payloadType": [{"text": "DICOM"}], "payloadMimeType": ["application/dicom"], "address": url}


def model_device(model: str, did: str) -> dict:
    """The lesion classifier as a Device: its model version is what made the Observation."""
    return {"resourceType": "Device", "id": did, "meta": _meta("Device"),
            "deviceName": [{"name": "DermKiosk lesion classifier", "type": "model-name"}],
            "version": [{"value": model}], "type": {"text": "Software: skin lesion image classifier (AI)"}}


def classifier_observation(r: ExportReferral, les: ExportLesion, oid: str, patient_id: str, body_id: str,
                           device_id: str, study_id: str) -> dict:
    """The classifier's output on one lesion (risk tier and per-class probabilities), apart from any finding."""
    return {"resourceType": "Observation", "id": oid, "meta": _meta("Observation"), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "imaging", "display": "Imaging"}]}],
            "code": {"text": "Skin lesion classifier output (decision support, not a diagnosis)"},
            "subject": ref("Patient", patient_id), "focus": [ref("BodyStructure", body_id)],
            "effectiveDateTime": les.created_at.isoformat(), "device": ref("Device", device_id),
            "derivedFrom": [ref("ImagingStudy", study_id)],
            "method": {"text": f"Automated image classification, model {les.model}"},
            "valueCodeableConcept": {"text": f"Risk tier: {les.risk}"},
            "component": [{"code": {"text": f"Probability of {label}"},
                           "valueQuantity": {"value": round(float(p) * 100, 2), "unit": "%",
                                             "system": "http://unitsofmeasure.org", "code": "%"}}
                          for label, p in sorted(les.probabilities.items())]}


def finding(r: ExportReferral, index: int, fid: str, patient_id: str, body_id: str, reader_id: str) -> dict:
    """The signing dermatologist's finding on one lesion: the ISIC diagnosis, the management, the free text."""
    les = r.signed.lesions[index]
    notes = [{"text": f"Management: {MANAGEMENT[les.management]}"}]
    if les.text:
        notes.append({"text": les.text})
    notes += [{"authorString": a["author"], "time": a["added_at"], "text": f"Addendum: {a['text']}"}
              for a in les.addenda]
    return {"resourceType": "Observation", "id": fid, "meta": _meta("Observation"),
            "status": "amended" if les.addenda else "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "exam", "display": "Exam"}]}],
            "code": {"text": "Dermatologist's diagnosis of skin lesion"}, "subject": ref("Patient", patient_id),
            "focus": [ref("BodyStructure", body_id)], "effectiveDateTime": les.signed_at,
            "performer": [ref("Practitioner", reader_id)],
            "valueCodeableConcept": {"coding": [{"system": f"{LOCAL}isic-diagnosis", "code": les.diagnosis,
                                                 "display": les.diagnosis_name}], "text": les.diagnosis_name},
            "note": notes}
