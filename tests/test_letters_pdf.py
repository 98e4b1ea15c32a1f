"""The GP and patient letters as PDF (ReportLab), read back with pypdf: plain English per lesion,
safety-netting for discharges, the service's name and contact from config, and never the
classifier's probabilities in the patient's letter. One page is rendered to PNG (pypdfium2) to look at."""

from __future__ import annotations

import io
import re
import uuid
from datetime import date

import pytest
from pypdf import PdfReader

from dashboard.handover import SignedLesion, SignedReferral, describe_site
from dashboard.letters import make
from dashboard.letters.wording import PATIENT_NEXT
from dashboard.serviceconfig import ServiceConfig
from tests.web import ARTIFACTS

SERVICE = ServiceConfig(name="Riverside Teledermatology Service", address=["Skin Unit", "Riverside Hospital"],
                        phone="01632 960123", email="skin.team@example.nhs.uk", hours="Monday to Friday, 9am to 5pm",
                        sign_off="Dr A Reader, Consultant Dermatologist")
NHS = "9434765919"
BENIGN = "Benign:Benign epidermal proliferations:Seborrheic keratosis"
MELANOMA = "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive"


def lesion(label, management, diagnosis, text="", risk="benign", probs=None) -> SignedLesion:
    return SignedLesion(case_id=str(uuid.uuid4()), label=label, where=describe_site("upper extremity", "left", "forearm"),
                        diagnosis=diagnosis, diagnosis_name=diagnosis.replace(":", " › "), management=management,
                        text=text, reader="dr.reader", signed_at="2026-12-04T10:15:00+00:00", risk=risk,
                        model="lesion-v2.0", probabilities=probs or {"nv": 0.1, "bkl": 0.8, "mel": 0.1})


def referral(*lesions) -> SignedReferral:
    return SignedReferral(key=str(uuid.uuid4()), referral_id=uuid.uuid4(), site="hub-a", device="kiosk-a",
                          reference="RIV/2026/0042", nhs_number=NHS, date_of_birth=date(1950, 2, 1),
                          referral_date=date(2026, 11, 20), practice_ods="A81001", lesions=tuple(lesions))


def text_of(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def signed():
    return referral(lesion("L1", "discharge", BENIGN, text="Typical seborrhoeic keratosis."),
                    lesion("L2", "urgent-2ww", MELANOMA, risk="cancer", probs={"mel": 0.73, "nv": 0.2, "bkl": 0.07}),
                    lesion("L3", "re-image", BENIGN, text="Dermoscopic view out of focus; retake with gel."))


def test_patient_letter_is_plain_english_with_safety_netting_and_no_classifier(signed):
    text = text_of(make(signed, SERVICE, "patient"))
    for words in ("Riverside Teledermatology Service", "01632 960123", "skin.team@example.nhs.uk",
                  "Monday to Friday, 9am to 5pm", "NHS number: 943 476 5919", "Date of birth: 01 February 1950",
                  "The mark on your left arm (forearm) (L1)", "harmless (benign) skin mark",
                  "seborrheic keratosis", "Please contact your GP practice if this mark changes",   # safety-netting
                  "within 2 weeks", "This does not mean you have cancer",
                  "The hub will contact you to take new photographs", "Dr A Reader, Consultant Dermatologist"):
        assert words in text, words
    assert not re.search(r"\d+ ?%", text), "a percentage in the patient's letter"
    for never in ("73", "AI", "classifier", "probabilit", "tier", "lesion-v2.0", "mel "):
        assert never not in text, never
    assert text.count("Please contact your GP practice if this mark changes") == 1     # only the discharge


def test_gp_letter_has_diagnosis_plan_reason_and_the_classifier_as_decision_support(signed):
    text = text_of(make(signed, SERVICE, "gp"))
    for words in ("To: the GP practice A81001", "Referral: RIV/2026/0042, dated 20 November 2026",
                  "Lesion L1: left arm (forearm)", "Seborrheic keratosis",
                  "Discharged to your care; safety-netting advice given", "Safety-netting given to the patient",
                  "urgent suspected-cancer pathway", "Melanoma Invasive",
                  "Reader's reason for new photographs: Dermoscopic view out of focus; retake with gel.",
                  "AI decision support (not a diagnosis): cancer tier, highest class mel 73 %, model lesion-v2.0",
                  "Riverside Teledermatology Service", "01632 960123"):
        assert words in text, words


def test_the_pdf_metadata_holds_no_patient_identifier(signed):
    for kind in ("gp", "patient"):
        pdf = make(signed, SERVICE, kind)
        meta = PdfReader(io.BytesIO(pdf)).metadata
        assert NHS not in str(dict(meta)) and "RIV/2026" not in str(dict(meta))
        assert NHS.encode() not in pdf.replace(b" ", b"")[:2000]


def test_a_patient_letter_page_rendered_to_png_for_a_look(signed):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(make(signed, SERVICE, "patient"))
    out = ARTIFACTS / "letter-patient-p1.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf[0].render(scale=1.4).to_pil().save(out)
    gp = pdfium.PdfDocument(make(signed, SERVICE, "gp"))
    gp[0].render(scale=1.4).to_pil().save(ARTIFACTS / "letter-gp-p1.png")
    assert out.stat().st_size > 20_000
    assert PATIENT_NEXT["discharge"]
