"""Does the quality gate judge a new clinic's files as it judges ours? Same photographs, other files.

    nice -n 5 .venv/bin/python -m bench.quality_robust [--n 350] [--jobs 2] [--calibrated]

The held-out test of issue 24 is "full-resolution originals from another clinic and year". Such files
differ from ours in ways that change nothing a dermatologist sees: held in portrait, saved larger (2x and 4x,
and 1.3x and 2.6x, which the gate cannot halve exactly on decoding) or at another JPEG quality, a wider
sensor with black beside the round view, the capture software's date and identifier written into the
pixels, stored on its side with an EXIF orientation, saved as a 16-bit PNG, a CMYK JPEG, a progressive JPEG
(4x) or a WebP, or in Adobe RGB's numbers (read, as the gate reads every file, without the profile); a view
cut round on a sensor larger than it ("round view 60%": the round view 0.6 of the frame's height, black round
it, the skin at its own pixels; "round view": as high as the frame, which is what cutting it round does alone);
or processed as a camera may process
it, noise reduction set high ("denoised": non-local means, strength 5, at the file's own size) or sharpening
("sharpened": unsharp masking, 0.8 at 1.5 px). Those two change what the focus check reads, which is why a
kiosk fixes its camera's denoise and sharpening (``[camera.picamera2] noise_reduction``, ``sharpness``) and
is calibrated through them. Each of these is made, in memory,
from every original of PH2 and HAM10000-masks (the two sources at camera size) and judged by the uncalibrated gate (the built-in
reference, as ``python -m edge quality``; ``--calibrated``: by a kiosk calibrated on 40 files of the
source's fit half, which are then left out); printed per variant: how many verdicts differ from the
original's, and how far the focus value moves (median, least and most of variant / original).

Then what a real blurred photograph keeps that the bench's blurred copies lose: defocus (Gaussian,
1.5 and 3 px, at the image's own size) as it is, with the sensor noise the blur removed put back (white
noise as strong as the original's own, ``noise_sigma``), and with a date and identifier written over
it in white, in another ink (``INKS``, each original the next in turn), and saved at JPEG quality 70 (an archive's,
or a default save's, blocks over smooth skin). Printed: the share caught by the focus check. The last line sums it up.

Nothing is written: the variants live in memory only (``../shared/data``'s rules).
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import time
from pathlib import Path

import cv2
import numpy as np

from bench.quality_sources import DEFAULT_DATA, part_of
from edge.camera import synth
from edge.camera.whitebalance import srgb_to_linear
from edge.quality import QualitySettings, assess
from edge.quality.calibrate import fit_reference, measure

_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """The image's own noise (grey levels): Immerkaer's estimate (1996) over its flattest half (edges and
    texture left out). Low after strong JPEG compression, which removes noise where the skin is flat."""
    g = gray.astype(np.float32)
    r = np.abs(cv2.filter2D(g, -1, _LAPLACE))[1:-1, 1:-1]
    e = (cv2.Sobel(g, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_32F, 0, 1) ** 2)[1:-1, 1:-1]
    flat = e <= np.percentile(e, 50)
    return float(np.sqrt(np.pi / 2) * r[flat].mean() / 6)


#: Inks capture software writes in besides white (BGR): a camera's orange or yellow date, and black, red,
#: green, cyan, blue and magenta.
INKS = {"yellow": (0, 255, 255), "orange": (0, 140, 255), "black": (0, 0, 0), "red": (0, 0, 255),
        "green": (0, 255, 0), "cyan": (255, 255, 0), "blue": (255, 0, 0), "magenta": (255, 0, 255)}


def stamp(img: np.ndarray, ink: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """``img`` with a date, an identifier and a magnification in ``ink`` (BGR; white unless given), as capture
    software writes them."""
    out = img.copy()
    h, w = out.shape[:2]
    s = h / 600
    font, th = cv2.FONT_HERSHEY_SIMPLEX, max(1, int(2 * s))
    cv2.putText(out, "2026-12-05 14:32  ID 4857773", (int(10 * s), h - int(12 * s)), font, 0.7 * s,
                ink, th, cv2.LINE_AA)
    cv2.putText(out, "x20", (w - int(60 * s), int(30 * s)), font, 0.7 * s, ink, th, cv2.LINE_AA)
    return out


def wide(img: np.ndarray) -> np.ndarray:
    """``img`` on a 16:9 frame, black beside it (a wider sensor round the same round view)."""
    h, w = img.shape[:2]
    pad = max(0, round((h * 16 / 9 - w) / 2))
    return cv2.copyMakeBorder(img, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def round_view(img: np.ndarray, share: float = 0.6) -> np.ndarray:
    """``img``'s middle cut round (a circle as wide as its shorter side) on a black 4:3 frame ``1 / share`` times
    that side high: a sensor larger than the dermatoscope's view, as a camera on a handheld dermatoscope sees it."""
    h, w = img.shape[:2]
    d = min(h, w)
    sq = img[(h - d) // 2:(h - d) // 2 + d, (w - d) // 2:(w - d) // 2 + d].copy()
    disc = np.zeros((d, d), np.uint8)
    cv2.circle(disc, (d // 2, d // 2), d // 2, 1, -1)
    sq[disc == 0] = 0
    fh = int(round(d / share))
    fw = int(round(fh * 4 / 3))
    out = np.zeros((fh, fw, 3), np.uint8)
    out[(fh - d) // 2:(fh - d) // 2 + d, (fw - d) // 2:(fw - d) // 2 + d] = sq
    return out


def larger(img: np.ndarray, k: float) -> np.ndarray:
    """``img`` ``k`` times larger (Lanczos): the file of a larger sensor, as far as the gate can tell."""
    return cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_LANCZOS4)


def jpeg(quality: int = 92):
    """An encoder: baseline JPEG at ``quality``, as our sources' files are."""
    return lambda im: synth.encode_jpeg(im, quality)


def encoded(ext: str, *params: int):
    """An encoder to ``ext`` through OpenCV with its ``params`` (a progressive JPEG, a WebP)."""
    def encode(im: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(ext, im, list(params))
        if not ok:
            raise ValueError(f"{ext} encoding failed")
        return buf.tobytes()
    return encode


def with_orientation(data: bytes, orientation: int) -> bytes:
    """JPEG ``data`` with an EXIF Orientation tag (APP1 after the start of image), as cameras write it:
    6 says "turn 90 degrees clockwise to show". A minimal big-endian TIFF block with that one entry."""
    ifd = (b"\x00\x01" + b"\x01\x12" + b"\x00\x03" + b"\x00\x00\x00\x01"
           + orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00")
    body = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + ifd
    return data[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]


def exif_turned(im: np.ndarray) -> bytes:
    """The photograph stored on its side with Orientation 6: a viewer (and the gate) shows it upright."""
    return with_orientation(synth.encode_jpeg(cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE), 92), 6)


def png16(im: np.ndarray) -> bytes:
    """A 16-bit PNG (a scientific camera's or a converter's lossless file)."""
    return encoded(".png")(im.astype(np.uint16) * 257)


def cmyk_jpeg(im: np.ndarray) -> bytes:
    """A CMYK JPEG (what print-minded software saves); Pillow writes it, OpenCV reads it."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(cv2.cvtColor(im, cv2.COLOR_BGR2RGB)).convert("CMYK").save(out, "JPEG", quality=92)
    return out.getvalue()


#: sRGB (linear) -> Adobe RGB (1998) (linear), through CIE XYZ (D65).
_SRGB_TO_ADOBE = np.linalg.inv(np.array([[0.5767, 0.1856, 0.1882], [0.2973, 0.6274, 0.0753], [0.0270, 0.0707, 0.9911]])) \
    @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


def adobe_rgb(img: np.ndarray) -> np.ndarray:
    """``img``'s colours as a camera set to Adobe RGB (1998) stores them, read without the profile (as the
    gate reads every file): paler, less saturated numbers for the same skin."""
    out = np.clip(srgb_to_linear(img[..., ::-1]) @ _SRGB_TO_ADOBE.T, 0, 1) ** (1 / 2.19921875)
    return np.ascontiguousarray((out[..., ::-1] * 255 + 0.5).astype(np.uint8))


#: The same photograph, another file: (name, make, encode).
VARIANTS = [
    ("portrait", lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE), jpeg()),
    ("2x", lambda im: larger(im, 2), jpeg()),
    ("4x", lambda im: larger(im, 4), jpeg()),
    ("4x portrait", lambda im: cv2.rotate(larger(im, 4), cv2.ROTATE_90_CLOCKWISE), jpeg()),
    ("1.3x", lambda im: larger(im, 1.3), jpeg()),  # not a power of two: scaled down the bilinear way
    ("2.6x", lambda im: larger(im, 2.6), jpeg()),
    ("jpeg q70", lambda im: im, jpeg(70)),
    ("16:9, black sides", wide, jpeg()),
    ("date stamp", stamp, jpeg()),
    ("exif turned", lambda im: im, exif_turned),
    ("png 16-bit", lambda im: larger(im, 2), png16),  # 2x: no DCT reduction for a PNG, so area averaging
    ("cmyk jpeg", lambda im: im, cmyk_jpeg),
    ("adobe rgb", adobe_rgb, jpeg()),
    ("progressive 4x", lambda im: larger(im, 4), encoded(".jpg", cv2.IMWRITE_JPEG_QUALITY, 92,
                                                          cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    ("webp", lambda im: im, encoded(".webp", cv2.IMWRITE_WEBP_QUALITY, 92)),
    ("round view", lambda im: round_view(im, 1.0), jpeg()),  # as high as the frame: what the round cut alone does
    ("round view 60%", round_view, jpeg()),
    ("denoised", lambda im: cv2.fastNlMeansDenoisingColored(im, None, 5, 5, 7, 21), jpeg()),
    ("sharpened", lambda im: cv2.addWeighted(im, 1.8, cv2.GaussianBlur(im, (0, 0), 1.5), -0.8, 0), jpeg()),
]
#: Defocus (pixels at the image's own size) as the bench makes it, and as a camera would.
BLURS = (("moderate", 1.5), ("strong", 3.0))
FORMS = ("as the bench", "+ its own noise", "+ date stamp", "+ coloured stamp", "+ jpeg q70")


def calibrated_on(paths: list[str], n: int = 40) -> tuple[QualitySettings, set[str]]:
    """Settings calibrated on the first ``n`` fit-half files of ``paths`` (one source), and those files."""
    fit = [p for p in paths if part_of(Path(p).stem) == "fit"][:n]
    base = QualitySettings()
    stills = [s for s in (measure(Path(p).read_bytes(), base) for p in fit) if not isinstance(s, str)]
    return base.model_copy(update={"reference": fit_reference(stills, f"{len(stills)} fit-half files")}), set(fit)


def _one(job: tuple[str, int, QualitySettings]) -> dict:
    """The original's verdict, its variants', and its blurred copies' focus verdicts."""
    path, seed, settings = job
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    rng = np.random.default_rng(seed)

    def judge(im: np.ndarray, encode=jpeg()):
        return assess(encode(im), "dermoscopic", settings)

    base = judge(img)
    out = {"ok": base.ok, "focus": base.checks["focus"].value, "variants": {}, "blur": {}}
    for name, make, encode in VARIANTS:
        q = judge(make(img), encode)
        out["variants"][name] = (q.ok, q.checks["focus"].value)
    sigma = noise_sigma(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    for grade, px in BLURS:
        blurred = synth.degrade_blur(img, px)
        noisy = np.clip(blurred + rng.normal(0.0, sigma, blurred.shape), 0, 255).astype(np.uint8)
        inked = stamp(blurred, list(INKS.values())[seed % len(INKS)])  # each original its ink, in turn
        files = ((blurred, jpeg()), (noisy, jpeg()), (stamp(blurred), jpeg()), (inked, jpeg()), (blurred, jpeg(70)))
        for form, (b, encode) in zip(FORMS, files):
            out["blur"][(grade, form)] = not judge(b, encode).checks["focus"].ok
    out["sigma"] = sigma
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the verdicts' stability per variant and the realistic blur's detection; 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=350, help="originals (PH2 then HAM10000-masks, every k-th)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--calibrated", action="store_true",
                    help="a kiosk calibrated per source on 40 fit-half files (left out of the figures)")
    args = ap.parse_args(argv)
    sources = [sorted(glob.glob(str(args.data / "ph2" / "images" / "*.jpg"))),
               sorted(glob.glob(str(args.data / "ham10000-masks" / "*.jpg")))]
    if not any(sources):
        raise SystemExit(f"no PH2 or HAM10000-masks images under {args.data}")
    jobs = []
    for files in sources:
        settings, fit = calibrated_on(files) if args.calibrated else (QualitySettings(), set())
        jobs += [(p, settings) for p in files if p not in fit]
    jobs = jobs[::max(1, len(jobs) // args.n)][:args.n]
    t0 = time.time()
    # spawned, not forked: the calibration above has started OpenCV's threads, which a fork would copy locked
    with multiprocessing.get_context("spawn").Pool(args.jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        res = list(pool.imap(_one, [(p, i, st) for i, (p, st) in enumerate(jobs)], chunksize=2))
    n = len(res)
    how = "kiosks calibrated per source on 40 fit-half files" if args.calibrated else "uncalibrated gate"
    print(f"{n} originals (PH2, HAM10000-masks), {how}; {sum(not r['ok'] for r in res)} refused as they are")
    print(f"  own noise (grey levels, Immerkaer): median {np.median([r['sigma'] for r in res]):.2f}, "
          f"90th percentile {np.percentile([r['sigma'] for r in res], 90):.2f}")
    print(f"  {'same photograph, other file':<20} {'verdicts changed':>17} {'refused':>8}   focus value / original's")
    changed = {}
    for name, _, _ in VARIANTS:
        flips = sum(r["variants"][name][0] != r["ok"] for r in res)
        refused = sum(not r["variants"][name][0] for r in res)
        ratio = [r["variants"][name][1] / r["focus"] for r in res if r["focus"]]
        changed[name] = flips
        print(f"  {name:<20} {flips:>17} {refused:>8}   median {np.median(ratio):.3f}, "
              f"{min(ratio):.3f}-{max(ratio):.3f}")
    print(f"  {'defocus':<10} {'grade':<9} " + " ".join(f"{f:>16}" for f in FORMS) + "   (focus check refuses)")
    caught = {}
    for grade, px in BLURS:
        row = {f: 100.0 * sum(r["blur"][(grade, f)] for r in res) / n for f in FORMS}
        caught[grade] = row
        print(f"  {px:>4.1f} px    {grade:<9} " + " ".join(f"{row[f]:>15.1f}%" for f in FORMS))
    print(f"({time.time() - t0:.0f} s)")
    s = caught["strong"]
    names = {k: k.replace(" ", "_").replace(",", "").replace("%", "") for k in changed}
    print("robust_variants_changed " + " ".join(f"{names[k]}={v}" for k, v in changed.items())
          + f" | defocus_strong_caught bench={s[FORMS[0]]:.1f}% noise={s[FORMS[1]]:.1f}% stamp={s[FORMS[2]]:.1f}%"
          + f" coloured_stamp={s[FORMS[3]]:.1f}% jpeg_q70={s[FORMS[4]]:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
