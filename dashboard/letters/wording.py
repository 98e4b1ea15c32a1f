"""What the letters say about each lesion, in plain English: for the GP, and for the patient.

The patient's words avoid jargon and never mention the classifier or its probabilities; every
discharge carries safety-netting advice (what to look out for and when to come back). The GP's
words add the diagnosis as read, the reader's note and, as decision support only, the
classifier's tier and model version.
"""

from __future__ import annotations

from datetime import datetime

#: What happens next, for the patient, by management code (wire.outcome.MANAGEMENT).
PATIENT_NEXT = {
    "urgent-2ww": ("We have referred you urgently to a skin specialist (dermatology) clinic. The hospital should "
                   "contact you within 2 weeks. This does not mean you have cancer: most people referred this way "
                   "do not. If you have not heard within 2 weeks, please call us."),
    "routine": ("We have referred you to a skin specialist (dermatology) clinic for a routine appointment. The "
                "hospital will write to you with a date."),
    "biopsy": ("We would like to take a small sample of this mark (a biopsy) or remove it, to look at it under a "
               "microscope. The hospital will contact you to book this."),
    "discharge": ("This mark does not need any treatment or another appointment. You do not need to do anything "
                  "now."),
    "re-image": ("The photographs of this mark were not clear enough for a specialist to be sure. The hub will "
                 "contact you to take new photographs. This is common and does not mean anything is wrong."),
}
#: What happens next, for the GP.
GP_NEXT = {
    "urgent-2ww": "Referred on the urgent suspected-cancer pathway (2-week wait) to dermatology.",
    "routine": "Referred routinely to the dermatology clinic.",
    "biopsy": "Biopsy or excision to be booked by the dermatology service.",
    "discharge": "Discharged to your care; safety-netting advice given to the patient (below).",
    "re-image": "New photographs needed: the hub will recall the patient. Reader's reason given below.",
}
#: Safety-netting advice for every discharged lesion (NICE NG12's signs of change).
SAFETY_NETTING = (
    "Please contact your GP practice if this mark changes: if it gets bigger, changes shape or colour, becomes "
    "raised, bleeds, itches, becomes crusty or sore, or does not heal. Please also contact them if a new mark "
    "appears that worries you. Check your skin once a month and take a photograph to compare. Protect your skin "
    "from the sun: shade, clothing and a sunscreen of SPF 30 or more.")
GP_SAFETY_NETTING = ("Safety-netting given to the patient: re-present if the lesion grows, changes shape or colour, "
                     "bleeds, itches, crusts, ulcerates or fails to heal; monthly self-examination; sun protection.")


def patient_diagnosis(diagnosis: str, diagnosis_name: str) -> str:
    """The diagnosis for the patient: the hierarchy's last level, with what its first level means."""
    top = (diagnosis or "").split(":")[0].strip().lower()
    name = (diagnosis or diagnosis_name or "").split(":")[-1].strip()
    if top == "benign":
        return f"This looks like a harmless (benign) skin mark: {name.lower()}."
    if top == "malignant":
        return f"This needs a closer look by a specialist. The dermatologist thinks it may be: {name.lower()}."
    return f"The dermatologist could not be sure what this mark is from the photographs ({name.lower()})."


def patient_lesion(les) -> list[str]:
    """Paragraphs about one lesion for the patient (:class:`dashboard.handover.SignedLesion`)."""
    paras = []
    if les.management != "re-image":
        paras.append(patient_diagnosis(les.diagnosis, les.diagnosis_name))
    paras.append(PATIENT_NEXT[les.management])
    if les.management == "discharge":
        paras.append(SAFETY_NETTING)
    return paras


def gp_lesion(les) -> list[str]:
    """Lines about one lesion for the GP: diagnosis, plan, reader's note, classifier (decision support)."""
    lines = [f"Diagnosis: {les.diagnosis_name}", f"Plan: {GP_NEXT[les.management]}"]
    if les.text:
        lines.append(("Reader's reason for new photographs: " if les.management == "re-image" else "Reader's note: ")
                     + les.text)
    for a in les.addenda:
        when = str(a.get("added_at", ""))[:16].replace("T", " ")
        lines.append(f"Addendum ({a.get('author', '')}, {when} UTC): {a.get('text', '')}")
    if les.management == "discharge":
        lines.append(GP_SAFETY_NETTING)
    if les.risk:
        top = max(les.probabilities.items(), key=lambda kv: kv[1]) if les.probabilities else None
        ai = f"AI decision support (not a diagnosis): {les.risk} tier"
        if top:
            ai += f", highest class {top[0]} {100 * top[1]:.0f} %"
        lines.append(ai + (f", model {les.model}" if les.model else "") + ".")
    lines.append(f"Signed by {les.reader} on {les.signed_at[:16].replace('T', ' ')} UTC.")
    return lines


def amended_labels(signed) -> list[str]:
    """The lesions (labels) that gained an addendum after the referral was signed off: the letters made then
    did not hold it, so the GP letter made now is an amended one (:class:`dashboard.handover.SignedReferral`)."""
    done = signed.signed_at
    return [les.label for les in signed.lesions
            if any(datetime.fromisoformat(str(a.get("added_at"))) > done for a in les.addenda if a.get("added_at"))]


def amended_notice(signed) -> str | None:
    """The GP letter's opening line when it is an amended one, else None."""
    labels = amended_labels(signed)
    if not labels:
        return None
    which = " and ".join(labels)
    return (f"AMENDED LETTER: it replaces the letter of {signed.signed_at:%d %B %Y}. After sign-off the dermatologist "
            f"added an addendum to the report on lesion{'s' if len(labels) > 1 else ''} {which} (below); the "
            "diagnosis and plan signed then stand unless the addendum says otherwise.")

