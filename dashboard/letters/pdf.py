"""The two letters as PDF, laid out with ReportLab's platypus (A4, the service's letterhead).

:func:`gp_letter` and :func:`patient_letter` take a :class:`dashboard.handover.SignedReferral`
and the ``[service]`` config and return PDF bytes. Text is escaped for ReportLab's paragraph
mark-up; the PDF's metadata holds no patient identifier (title and subject are generic).
"""

from __future__ import annotations

import io
from datetime import date
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import HRFlowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer

from wire.referral import format_nhs_number

from . import wording

_STYLES = getSampleStyleSheet()
BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontName="Helvetica", fontSize=11, leading=15)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=9, leading=12, textColor=colors.HexColor("#333333"))
HEAD = ParagraphStyle("head", parent=BODY, fontName="Helvetica-Bold", fontSize=15, leading=19,
                      textColor=colors.HexColor("#005eb8"))
SUB = ParagraphStyle("sub", parent=BODY, fontName="Helvetica-Bold", fontSize=12, leading=16, spaceBefore=8)
RIGHT = ParagraphStyle("right", parent=SMALL, alignment=2, spaceBefore=0, spaceAfter=0, leading=11)


def _p(text: str, style=BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _letterhead(service, title: str) -> list:
    contact = [line for line in (*service.address, f"Telephone: {service.phone}" if service.phone else "",
                                 f"Email: {service.email}" if service.email else "",
                                 f"Phone lines open {service.hours}" if service.hours else "") if line]
    return [_p(service.name, HEAD), *[_p(line, RIGHT) for line in contact],
            HRFlowable(width="100%", color=colors.HexColor("#005eb8"), spaceBefore=4, spaceAfter=8),
            _p(title, SUB), _p(f"Date: {date.today():%d %B %Y}", SMALL), Spacer(1, 4)]


def _identity(signed) -> list:
    """Who and which referral the letter is about (the patient's letter and the GP's alike)."""
    lines = []
    if signed.nhs_number:
        lines.append(f"NHS number: {format_nhs_number(signed.nhs_number)}")
    if signed.date_of_birth:
        lines.append(f"Date of birth: {signed.date_of_birth:%d %B %Y}")
    lines.append(f"Referral: {signed.reference}, dated {signed.referral_date:%d %B %Y}")
    return [_p(line, SMALL) for line in lines] + [Spacer(1, 6)]


def _build(story: list, title: str) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=title, author="DermKiosk", subject="Teledermatology outcome",
                            creator="DermKiosk")
    doc.build(story)
    return buf.getvalue()


def gp_letter(signed, service) -> bytes:
    """The letter to the referring GP practice: every lesion's diagnosis, plan and reader's note."""
    story = _letterhead(service, "Teledermatology outcome: letter to the referring GP")
    notice = wording.amended_notice(signed)
    if notice:
        story += [_p(notice, SUB), Spacer(1, 4)]
    story += [_p(f"To: the GP practice {signed.practice_ods}" if signed.practice_ods else "To: the referring GP"),
              Spacer(1, 4), *_identity(signed),
              _p(f"Thank you for this referral. A consultant dermatologist has read the photographs of "
                 f"{len(signed.lesions)} lesion{'s' if len(signed.lesions) != 1 else ''} taken at the hub "
                 f"({signed.site}). The outcome for each lesion:")]
    for les in signed.lesions:
        story.append(KeepTogether([_p(f"Lesion {les.label}: {les.where}", SUB),
                                   *[_p(line) for line in wording.gp_lesion(les)]]))
    story += [Spacer(1, 8), _p("The patient has been sent a letter in plain English with the same outcome and, "
                               "for any discharged lesion, the safety-netting advice above."),
              Spacer(1, 8), _p("Yours sincerely,"), _p(service.sign_off), _p(service.name, SMALL)]
    return _build(story, "Teledermatology outcome (GP)")


def patient_letter(signed, service) -> bytes:
    """The letter to the patient: plain English, what happens next, safety-netting; no classifier output."""
    story = _letterhead(service, "The results of your skin photographs")
    n = len(signed.lesions)
    story += [*_identity(signed), _p("Dear patient,"),
              _p(f"A consultant skin specialist (dermatologist) has looked at the photographs of the "
                 f"{'mark' if n == 1 else str(n) + ' marks'} on your skin that were taken at the hub. "
                 "This letter tells you what they found and what happens next.")]
    for les in signed.lesions:
        story.append(KeepTogether([_p(f"The mark on your {les.where} ({les.label})", SUB),
                                   *[_p(text) for text in wording.patient_lesion(les)]]))
    contact = " or ".join(x for x in (f"call {service.phone}" if service.phone else "",
                                      f"email {service.email}" if service.email else "") if x)
    story += [Spacer(1, 8), _p("If you have any questions about this letter, "
                               + (f"please {contact}" if contact else "please contact your GP practice")
                               + (f" ({service.hours})." if service.hours else ".")),
              _p("If you feel unwell or a mark changes quickly, contact your GP practice or call NHS 111."),
              Spacer(1, 8), _p("Yours sincerely,"), _p(service.sign_off), _p(service.name, SMALL)]
    return _build(story, "Teledermatology outcome (patient)")
