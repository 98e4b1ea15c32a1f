"""The kiosk's lesion classifier: the committed int8 TFLite model behind one small class.

The interpreter is created once per process (LiteRT's ``ai_edge_litert`` with
XNNPACK; ``tflite_runtime`` only where LiteRT is absent). The model comes with
a manifest (labels, input size and normalisation, quantization, version,
SHA-256, risk thresholds); the SHA-256 is checked at load so a corrupt or
swapped file is refused rather than silently used.

The output is per-class probabilities, a risk tier and the model version. The
tier is the most severe one whose probability passes its threshold (not the
argmax). This is decision support only: every case is read by a dermatologist.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.camera.replay import jpeg_size
from edge.colour import DEFAULT_POWER, apply_colour
from wire.kioskconfig.quality import GreyPatch
from wire.messages import LABELS, TIER_OF_LABEL, Classification, tier_for

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "lesion"


class ModelError(RuntimeError):
    """The model or its manifest cannot be used; the message says why."""


class ImageError(ValueError):
    """The image cannot be decoded."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputSpec(_Strict):
    """How an image becomes the model's input tensor."""

    size: int = Field(gt=0)
    color: Literal["RGB"] = "RGB"
    #: ``centre-square``: the largest centred square; ``lesion-square``: a square around the lesion the
    #: quality gate's segmentation finds (``crop_margin`` times its bounding box's longer side), the
    #: centre square where none is found
    crop: Literal["centre-square", "lesion-square"] = "centre-square"
    crop_margin: float = Field(default=1.5, ge=1.0, le=4.0)
    #: colour constancy on the resized RGB canvas (``edge.colour``), the same function as in training
    colour: Literal["none", "shades-of-gray"] = "none"
    colour_power: float = Field(default=DEFAULT_POWER, ge=1.0, le=16.0)
    mean: float
    std: float
    dtype: Literal["int8", "uint8"]
    scale: float
    zero_point: int


class OutputSpec(_Strict):
    """What the model's output tensor holds."""

    kind: Literal["logits", "probabilities"]
    #: softmax temperature fitted on validation (calibration); logits are divided by it
    temperature: float = Field(default=1.0, gt=0)
    dtype: Literal["int8", "uint8"]
    scale: float
    zero_point: int


class Manifest(_Strict):
    """The model's manifest (models/lesion/manifest.json); extra fields (metrics, training) are kept."""

    name: str
    version: str
    file: str = "model.tflite"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    labels: list[str]
    input: InputSpec
    output: OutputSpec
    thresholds: dict[str, float]


def load_manifest(model_dir: Path) -> Manifest:
    """Read and validate ``model_dir/manifest.json``; ModelError names the problem."""
    path = Path(model_dir) / "manifest.json"
    try:
        m = Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ModelError(f"{path}: model manifest not found") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ModelError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if not m.labels or list(m.labels) != [lab for lab in LABELS if lab in m.labels]:
        # a model may know fewer labels than the contract (the first one had no scc), in its order
        raise ModelError(f"{path}: labels {m.labels} are not an ordered subset of the wire contract's "
                         f"{list(LABELS)}")
    missing = {t for t in TIER_OF_LABEL.values() if t != "benign"} - set(m.thresholds)
    if missing:
        raise ModelError(f"{path}: thresholds lack {sorted(missing)}")
    return m


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - only where LiteRT is absent
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter


def decode_jpeg(data: bytes, min_side: int) -> np.ndarray:
    """Decode image bytes to BGR, DCT-reduced (2x/4x/8x) while the short side stays >= ``min_side``."""
    size = jpeg_size(data)
    flag = cv2.IMREAD_COLOR
    if size is not None:
        for f, fl in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                      (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if min(size) // f >= min_side:
                flag = fl
                break
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    if img is None or img.ndim != 3:
        raise ImageError("not a readable image")
    return img


#: Longer side at which the lesion is segmented for the crop (the quality gate's own analysis size).
CROP_ANALYSIS_SIDE = 400
#: A lesion's square is never smaller than this share of the frame's shorter side (a speck or a
#: mis-segmentation must not zoom the model into noise).
CROP_MIN_SIDE = 0.35


def lesion_square(bgr: np.ndarray, margin: float = 1.5) -> tuple[int, int, int]:
    """A square (x0, y0, side) in ``bgr`` centred on the segmented lesion, inside the frame.

    The lesion is the quality gate's own (``edge.quality.scene.find_lesion``: field of view,
    shading-corrected Otsu threshold, stickers and pen marks passed over, the most central large
    blob that stands out from the skin) at ``CROP_ANALYSIS_SIDE``; the side is ``margin`` times the
    longer side of its bounding box, between ``CROP_MIN_SIDE`` and all of the frame's shorter side,
    shifted to lie inside the frame. No lesion found (none that the gate would call one): the centre
    square.
    """
    from edge.quality.analysis import shrink
    from edge.quality.scene import find_lesion

    h, w = bgr.shape[:2]
    short = min(h, w)
    centre = ((w - short) // 2, (h - short) // 2, short)
    small = shrink(bgr, CROP_ANALYSIS_SIDE)
    f = w / small.shape[1]
    _, lesion, _, present = find_lesion(small)
    if not present:
        return centre
    x, y, bw, bh = cv2.boundingRect(lesion.mask)
    side = int(round(min(short, max(CROP_MIN_SIDE * short, margin * max(bw, bh) * f))))
    cx, cy = (x + bw / 2) * f, (y + bh / 2) * f
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    return x0, y0, side


#: The grey patch is painted over grown by this share of its radius (and 2 px): its edge, softened by the optics.
PATCH_COVER = 1.3


def without_patch(bgr: np.ndarray, patch: GreyPatch) -> np.ndarray:
    """``bgr`` with the contact plate's grey patch (``GreyPatch``) painted over from the skin round it
    (``cv2.inpaint``). The model was trained without one: drawn into 180 real stills, a patch changed its risk tier
    on 22 of them (12 %: 13 benign to cancer, 9 back), which a kiosk's hardware must not do to its decision support."""
    h, w = bgr.shape[:2]
    cx, cy, r = patch.circle(w, h)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (cx, cy), max(1, round(PATCH_COVER * r + 2)), 255, -1)
    return cv2.inpaint(bgr, mask, 3, cv2.INPAINT_TELEA)


def square_canvas(bgr: np.ndarray, size: int, box: tuple[int, int, int]) -> np.ndarray:
    """The square ``box`` (x0, y0, side) of a BGR image as a ``size`` x ``size`` RGB uint8 canvas.

    Area averaging where the square is shrunk, bilinear where it is enlarged; the training side
    (``models.sources.to_canvas``) resizes the same way.
    """
    x0, y0, s = box
    sq = bgr[y0:y0 + s, x0:x0 + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.cvtColor(cv2.resize(sq, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB)


class Classifier:
    """The int8 lesion classifier. Thread-safe: calls are serialised on one interpreter."""

    def __init__(self, model_dir: Path | str = DEFAULT_MODEL_DIR, threads: int = 2):
        self.model_dir = Path(model_dir)
        self.manifest = load_manifest(self.model_dir)
        data = (self.model_dir / self.manifest.file).read_bytes() if (self.model_dir / self.manifest.file).exists() \
            else None
        if data is None:
            raise ModelError(f"{self.model_dir / self.manifest.file}: model file not found")
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.manifest.sha256:
            raise ModelError(f"{self.model_dir / self.manifest.file}: SHA-256 {digest[:12]}… does not match "
                             f"the manifest's {self.manifest.sha256[:12]}…; refusing to load")
        Interpreter = _interpreter_class()
        self._it = Interpreter(model_content=data, num_threads=threads)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]
        self._out = self._it.get_output_details()[0]
        size = self.manifest.input.size
        if tuple(self._in["shape"]) != (1, size, size, 3):
            raise ModelError(f"model input shape {tuple(self._in['shape'])} is not (1, {size}, {size}, 3)")
        self._lock = threading.Lock()
        #: The contact plate's grey patch, painted over before the model sees a frame (``without_patch``); set by the
        #: service from ``[quality.grey_patch]`` (None: the dermatoscope has none).
        self.patch: GreyPatch | None = None
        self.size = size
        self.version = self.manifest.version
        self.thresholds = dict(self.manifest.thresholds)

    # --- preprocessing -----------------------------------------------------------------------------
    def crop_box(self, bgr: np.ndarray) -> tuple[int, int, int]:
        """The square (x0, y0, side) of ``bgr`` that the model sees, as the manifest's ``input.crop`` says."""
        if self.manifest.input.crop == "lesion-square":
            return lesion_square(bgr, self.manifest.input.crop_margin)
        h, w = bgr.shape[:2]
        s = min(h, w)
        return (w - s) // 2, (h - s) // 2, s

    def canvas(self, bgr: np.ndarray) -> np.ndarray:
        """The RGB uint8 (S, S, 3) image the model sees: the manifest's crop, resize and colour constancy."""
        spec = self.manifest.input
        return apply_colour(square_canvas(bgr, self.size, self.crop_box(bgr)), spec.colour, spec.colour_power)

    def preprocess(self, bgr: np.ndarray) -> np.ndarray:
        """BGR image of any size -> the model's quantized (1, S, S, 3) input (:meth:`canvas`, quantized)."""
        rgb = self.canvas(bgr)
        spec = self.manifest.input
        # q = x_norm / scale + zp with x_norm = (x - mean) / std, done in one affine step
        a = 1.0 / (spec.std * spec.scale)
        b = spec.zero_point - spec.mean * a
        info = np.iinfo(np.int8 if spec.dtype == "int8" else np.uint8)
        q = np.clip(np.rint(rgb.astype(np.float32) * a + b), info.min, info.max)
        return q.astype(info.dtype)[None]

    # --- inference ---------------------------------------------------------------------------------
    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run the interpreter on a prepared input tensor; returns dequantized output (float32)."""
        with self._lock:
            self._it.set_tensor(self._in["index"], tensor)
            self._it.invoke()
            raw = self._it.get_tensor(self._out["index"])[0]
        spec = self.manifest.output
        return (raw.astype(np.float32) - spec.zero_point) * spec.scale

    def probabilities(self, bgr: np.ndarray, tta: bool = False) -> np.ndarray:
        """Per-class probabilities (label order of the manifest); ``tta`` averages over 4 flips. A grey patch
        (``self.patch``) is painted over first."""
        if self.patch is not None:
            bgr = without_patch(bgr, self.patch)
        views = [bgr, bgr[:, ::-1], bgr[::-1], bgr[::-1, ::-1]] if tta else [bgr]
        probs = []
        for v in views:
            out = self.invoke(self.preprocess(np.ascontiguousarray(v)))
            if self.manifest.output.kind == "logits":
                out = out / self.manifest.output.temperature
                e = np.exp(out - out.max())
                out = e / e.sum()
            probs.append(out)
        return np.mean(probs, axis=0)

    def classify(self, bgr: np.ndarray, tta: bool = False) -> Classification:
        """Classify a decoded BGR image: probabilities, risk tier (thresholds) and model version."""
        p = self.probabilities(bgr, tta=tta)
        probs = {lab: round(float(v), 4) for lab, v in zip(self.manifest.labels, p)}
        return Classification(probabilities=probs, risk=tier_for(probs, self.thresholds), model=self.version)

    def classify_jpeg(self, data: bytes, tta: bool = False) -> Classification:
        """Decode (DCT-reduced for large JPEGs) and classify; ImageError if the bytes are not an image."""
        return self.classify(decode_jpeg(data, 2 * self.size), tta=tta)


def manifest_json(model_dir: Path | str = DEFAULT_MODEL_DIR) -> dict:
    """The raw manifest as a dict (for status pages and reports)."""
    return json.loads((Path(model_dir) / "manifest.json").read_text())
