"""The front/back body map drawn for touch: large regions, each an ISIC general anatomic site.

Coordinates are in the SVG's viewBox (300 x 340 per view); every region is at least
52 units across so that it stays at least 44 px at the size the 800x480 screen draws it.
The front view shows the patient facing the photographer, so the **patient's left is on
the viewer's right**; on the back view the patient's left is on the viewer's left.
``lat`` is the laterality a tap on the region means: ``left``/``right`` for a paired part,
``auto`` where the tap's distance from the midline decides (head, neck and torso), or
``midline``.
"""

from __future__ import annotations

from dataclasses import dataclass

from wire.messages import BODY_SITES

WIDTH, HEIGHT = 300, 340
MIDLINE = WIDTH / 2
#: Within this many viewBox units of the midline an ``auto`` region's tap is ``midline``.
MIDLINE_BAND = 14


@dataclass(frozen=True)
class Region:
    """One tappable region of a view: its site, laterality rule, label and shapes (SVG rects)."""

    key: str
    site: str
    lat: str
    label: str
    rects: tuple[tuple[int, int, int, int, int], ...]   # x, y, width, height, corner radius

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The region's bounding box (x, y, width, height)."""
        xs = [r[0] for r in self.rects] + [r[0] + r[2] for r in self.rects]
        ys = [r[1] for r in self.rects] + [r[1] + r[3] for r in self.rects]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _side(view: str, viewer_left: bool) -> str:
    """The patient's side drawn on the viewer's left (front view) or right."""
    if view == "front":
        return "right" if viewer_left else "left"
    return "left" if viewer_left else "right"


def _regions(view: str) -> tuple[Region, ...]:
    front = view == "front"
    vl, vr = _side(view, True), _side(view, False)
    torso = "anterior torso" if front else "posterior torso"
    out = [
        Region("head", "head/neck", "auto", "Head and neck", ((122, 2, 56, 56, 26), (134, 54, 32, 22, 4))),
        Region("torso", torso, "auto", "Front of torso" if front else "Back of torso", ((112, 76, 76, 120, 6),)),
        Region(f"flank-{vl}", "lateral torso", vl, f"{vl.capitalize()} side of torso", ((58, 76, 52, 120, 10),)),
        Region(f"flank-{vr}", "lateral torso", vr, f"{vr.capitalize()} side of torso", ((190, 76, 52, 120, 10),)),
    ]
    arm_end = 236 if front else 292
    out += [Region(f"arm-{vl}", "upper extremity", vl, f"{vl.capitalize()} arm", ((2, 80, 52, arm_end - 80, 18),)),
            Region(f"arm-{vr}", "upper extremity", vr, f"{vr.capitalize()} arm", ((246, 80, 52, arm_end - 80, 18),))]
    leg_end = 338 if front else 284
    out += [Region(f"leg-{vl}", "lower extremity", vl, f"{vl.capitalize()} leg", ((96, 198, 52, leg_end - 198, 14),)),
            Region(f"leg-{vr}", "lower extremity", vr, f"{vr.capitalize()} leg", ((152, 198, 52, leg_end - 198, 14),))]
    if front:
        out += [Region(f"palm-{vl}", "palms/soles", vl, f"{vl.capitalize()} palm", ((2, 240, 52, 52, 20),)),
                Region(f"palm-{vr}", "palms/soles", vr, f"{vr.capitalize()} palm", ((246, 240, 52, 52, 20),)),
                Region("genital", "oral/genital", "midline", "Genital area", ((122, 198, 56, 52, 12),))]
    else:
        out += [Region(f"sole-{vl}", "palms/soles", vl, f"{vl.capitalize()} sole", ((96, 288, 52, 50, 14),)),
                Region(f"sole-{vr}", "palms/soles", vr, f"{vr.capitalize()} sole", ((152, 288, 52, 50, 14),))]
    return tuple(out)


VIEWS = {"front": _regions("front"), "back": _regions("back")}
#: Finer labels offered as quick picks for each site (the photographer may type another).
DETAILS = {
    "head/neck": ("Scalp", "Forehead", "Cheek", "Nose", "Ear", "Neck"),
    "upper extremity": ("Shoulder", "Upper arm", "Elbow", "Forearm", "Wrist", "Back of hand"),
    "lower extremity": ("Thigh", "Knee", "Shin", "Calf", "Ankle", "Top of foot"),
    "anterior torso": ("Chest", "Breast", "Abdomen", "Umbilicus"),
    "posterior torso": ("Upper back", "Lower back", "Buttock"),
    "lateral torso": ("Axilla", "Flank"),
    "palms/soles": ("Palm", "Finger", "Sole", "Heel", "Toe"),
    "oral/genital": ("Lip", "Mouth", "Genital", "Perianal"),
}
SITE_NAMES = {
    "head/neck": "Head or neck", "upper extremity": "Arm", "lower extremity": "Leg",
    "anterior torso": "Front of torso", "posterior torso": "Back of torso", "lateral torso": "Side of torso",
    "palms/soles": "Palm or sole", "oral/genital": "Mouth or genital area",
}
LATERALITY_NAMES = {"left": "Left", "right": "Right", "midline": "Midline", "not-applicable": "Not applicable"}

assert {r.site for v in VIEWS.values() for r in v} == set(BODY_SITES), "the map must offer every ISIC site"
assert set(DETAILS) == set(BODY_SITES) == set(SITE_NAMES)


def laterality_at(view: str, region_key: str, x: float) -> str:
    """The laterality a tap at viewBox ``x`` on ``region_key`` of ``view`` means (as the page's script does)."""
    region = next(r for r in VIEWS[view] if r.key == region_key)
    if region.lat != "auto":
        return region.lat
    if abs(x - MIDLINE) <= MIDLINE_BAND:
        return "midline"
    return _side(view, x < MIDLINE)


def describe(location) -> str:
    """``Left arm, forearm``: how a lesion's place reads on the screens (no patient identifier)."""
    site = SITE_NAMES.get(str(getattr(location.site, "value", location.site)), str(location.site))
    lat = location.laterality
    words = (f"{LATERALITY_NAMES[lat]} " + site[0].lower() + site[1:]) if lat in ("left", "right") else site
    if lat == "midline":
        words += " (midline)"
    return f"{words}, {location.detail}" if location.detail else words
