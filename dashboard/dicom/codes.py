"""Coded anatomy for the DICOM objects and FHIR resources: ISIC ``anatom_site_general`` -> SNOMED CT.

Source of the table: DICOM PS3.16 (Content Mapping Resource), **CID 4029 "Dermatology Anatomic Site"**
(https://dicom.nema.org/medical/dicom/current/output/chtml/part16/sect_CID_4029.html), which follows
the DICOM convention of "skin of ..." concepts for dermatology; where CID 4029 has no concept for a
whole ISIC region, **CID 4031 "Common Anatomic Regions"** (Head and Neck, Trunk) with a modifier from
**CID 2 "Anatomic Modifier"** (Lateral). Laterality from **CID 244 "Laterality"** (Left, Right) and, for a
midline lesion, CID 2's "Median". Two ISIC values join two regions (``palms/soles``, ``oral/genital``):
the photographer's finer label decides between them where it names one; otherwise the lesion is coded
as "Skin", the CID 4029 concept that holds for both, rather than guessing.

Every code is a triple ``(code value, coding scheme designator, code meaning)`` as DICOM writes it;
FHIR uses the system ``http://snomed.info/sct`` for ``SCT``.
"""

from __future__ import annotations

Code = tuple[str, str, str]

SNOMED_SYSTEM = "http://snomed.info/sct"

SKIN: Code = ("39937001", "SCT", "Skin")
#: ISIC ``anatom_site_general`` -> (region, modifier or None). CID 4029 unless noted.
ISIC_SITE: dict[str, tuple[Code, Code | None]] = {
    "head/neck": (("774007", "SCT", "Head and Neck"), None),                  # CID 4031
    "upper extremity": (("371311000", "SCT", "Skin of upper extremity"), None),
    "lower extremity": (("371304004", "SCT", "Skin of lower extremity"), None),
    "anterior torso": (("181491009", "SCT", "Skin of anterior trunk"), None),
    "posterior torso": (("66643007", "SCT", "Skin of back"), None),
    "lateral torso": (("22943007", "SCT", "Trunk"), ("49370004", "SCT", "Lateral")),  # CID 4031 + CID 2
    "palms/soles": (SKIN, None),
    "oral/genital": (SKIN, None),
}
#: Finer labels that settle the two joined ISIC regions (words in the photographer's label -> code).
REFINE: dict[str, tuple[tuple[tuple[str, ...], Code], ...]] = {
    "palms/soles": ((("palm", "hand", "thenar"), ("70887009", "SCT", "Skin of palm of hand")),
                    (("sole", "foot", "heel", "plantar"), ("60496002", "SCT", "Skin of foot"))),
    "oral/genital": ((("oral", "mouth", "lip", "tongue", "gum", "cheek mucosa"), ("113277000", "SCT", "Oral mucosa")),
                     (("genital", "penis", "scrot", "vulva", "labia", "labium", "perine"),
                      ("60944009", "SCT", "Skin of external genitalia"))),
}
#: Laterality (CID 244) and a midline lesion (CID 2 "Median"); "not-applicable" is not coded.
LATERALITY: dict[str, Code] = {
    "left": ("7771000", "SCT", "Left"),
    "right": ("24028007", "SCT", "Right"),
    "midline": ("260528009", "SCT", "Median"),
}
#: DICOM Image Laterality (0020,0062) values.
IMAGE_LATERALITY = {"left": "L", "right": "R", "midline": "U"}


def site_code(site: str, detail: str = "") -> tuple[Code, Code | None]:
    """The coded region (and modifier) of an ISIC general site, refined by the finer label where it names one.

    An unknown site raises ValueError naming it (the wire contract only lets the ISIC values through).
    """
    if site not in ISIC_SITE:
        raise ValueError(f"no SNOMED CT code for body site {site!r}: expected one of {sorted(ISIC_SITE)}")
    region, modifier = ISIC_SITE[site]
    words = (detail or "").lower()
    for needles, code in REFINE.get(site, ()):
        if any(n in words for n in needles):
            return code, None
    return region, modifier


def laterality_code(laterality: str | None) -> Code | None:
    """The coded laterality of a lesion, or None (not applicable / not recorded)."""
    return LATERALITY.get(laterality or "")
