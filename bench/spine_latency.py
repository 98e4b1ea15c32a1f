"""Capture-to-verdict time for a 12-megapixel JPEG, and wire bytes per case against JPEG bytes.

    .venv/bin/python bench/spine_latency.py [--runs 10] [--model-dir models/lesion] [--threads 2]

Pipeline (what the kiosk does after the shutter): quality gate (its own DCT-reduced decode),
classifier (decode, preprocess, invoke), CaseHeader, outbox commit (atomic image file + fsync +
SQLite WAL commit). Beside it, in the same run, the floor: a bare full-resolution decode +
resize + ``invoke()`` on the same LiteRT model. Then the wire overhead of the case frame
(goal: wire bytes <= 1.02 x JPEG bytes + 4 KB) for 1 and 3 images.

Images are generated (edge.camera.synth), never patient data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.camera.synth import encode_jpeg, lesion_image  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from edge.quality import QualitySettings, assess  # noqa: E402
from wire.codec import encode_case, sha256_hex  # noqa: E402
from wire.messages import CaseHeader, Classification, ImageMeta  # noqa: E402


def ms(xs: list[float]) -> str:
    """Median and spread of a list of seconds, in milliseconds."""
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1e3:7.1f} ms  (min {xs[0] * 1e3:7.1f}, max {xs[-1] * 1e3:7.1f})"


def header_for(images: list[tuple[str, bytes, int, int]], cls: Classification | None, quality=None) -> CaseHeader:
    """A realistic case header for (view, jpeg, width, height) images."""
    now = datetime.now(timezone.utc)
    return CaseHeader(
        case_id=uuid.uuid4(), referral_ref="BENCH-REF-000001", lesion_id="L1", body_site="anterior torso",
        site="bench-site", device_id="bench-kiosk", created_at=now, seq=0,
        software_version="dermkiosk-edge/bench", model_version=cls.model if cls else "none",
        images=[ImageMeta(view=v, captured_at=now, sha256=sha256_hex(j), length=len(j), width=w, height=h,
                          quality=quality, classification=cls if v == "dermoscopic" else None)
                for v, j, w, h in images],
        classification=cls,
    )


class BareModel:
    """The floor: LiteRT interpreter on the same model file, fed a full decode + resize."""

    def __init__(self, model_path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(model_path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        _, self.h, self.w, _ = self.inp["shape"]

    def run(self, jpeg: bytes, reduced: bool = False) -> tuple[float, float]:
        """Decode + resize, then invoke; returns (decode_s, invoke_s).

        ``reduced``: let libjpeg decode at 1/8 scale (DCT scaling), as small as still covers
        the model input for a 12 MP still; otherwise a full-resolution decode.
        """
        t0 = time.perf_counter()
        flag = cv2.IMREAD_REDUCED_COLOR_8 if reduced else cv2.IMREAD_COLOR
        bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), flag)
        x = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (int(self.w), int(self.h)),
                       interpolation=cv2.INTER_AREA)
        if self.inp["dtype"] in (np.int8, np.uint8):
            scale, zero = self.inp["quantization"]
            x = np.clip(np.round(x.astype(np.float32) / 255.0 / (scale or 1) + zero),
                        np.iinfo(self.inp["dtype"]).min, np.iinfo(self.inp["dtype"]).max)
        else:
            x = x.astype(np.float32) / 255.0
        x = x.astype(self.inp["dtype"])[None]
        t1 = time.perf_counter()
        self.it.set_tensor(self.inp["index"], x)
        self.it.invoke()
        self.it.get_tensor(self.out["index"])
        return t1 - t0, time.perf_counter() - t1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "lesion")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args(argv)

    from edge.classifier import Classifier

    print(f"generating {args.runs} lesion images at {args.width}x{args.height} "
          f"({args.width * args.height / 1e6:.1f} MP) ...", flush=True)
    jpegs = [encode_jpeg(lesion_image(args.width, args.height, seed=100 + i), 92) for i in range(args.runs)]
    print(f"JPEG size: median {statistics.median(len(j) for j in jpegs) / 1e6:.2f} MB")

    clf = Classifier(args.model_dir, threads=args.threads)
    bare = BareModel(args.model_dir / "model.tflite", args.threads)
    qs = QualitySettings()
    clf.classify_jpeg(jpegs[0])                 # warm-up (first invoke allocates)
    bare.run(jpegs[0])
    bare.run(jpegs[0], reduced=True)

    t_quality, t_classify, t_commit, t_total = [], [], [], []
    b_decode, b_invoke, b_total = [], [], []
    r_decode, r_total = [], []
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox", min_free_bytes=0)
        for jpeg in jpegs:
            t0 = time.perf_counter()
            quality = assess(jpeg, "dermoscopic", qs)
            t1 = time.perf_counter()
            cls = clf.classify_jpeg(jpeg)
            t2 = time.perf_counter()
            header = header_for([("dermoscopic", jpeg, args.width, args.height)], cls, quality)
            outbox.submit(header, [jpeg])
            t3 = time.perf_counter()
            t_quality.append(t1 - t0)
            t_classify.append(t2 - t1)
            t_commit.append(t3 - t2)
            t_total.append(t3 - t0)
            d, i = bare.run(jpeg)
            b_decode.append(d)
            b_invoke.append(i)
            b_total.append(d + i)
            d, i = bare.run(jpeg, reduced=True)
            r_decode.append(d)
            r_total.append(d + i)
        outbox.close()

    print(f"\nmodel {clf.version}, {args.threads} thread(s), {args.runs} runs, same process")
    print("kiosk pipeline (capture -> verdict stored in the outbox):")
    print(f"  quality gate (reduced decode + checks)     {ms(t_quality)}")
    print(f"  classifier (decode, preprocess, invoke)    {ms(t_classify)}")
    print(f"  header + outbox commit (fsync, WAL)        {ms(t_commit)}")
    print(f"  TOTAL capture-to-verdict                   {ms(t_total)}")
    print("bare decode + invoke (same model, same images, same run):")
    print(f"  full-resolution decode + resize            {ms(b_decode)}")
    print(f"  invoke()                                   {ms(b_invoke)}")
    print(f"  TOTAL bare full decode + invoke            {ms(b_total)}")
    print(f"  1/8-scale DCT decode + resize              {ms(r_decode)}")
    print(f"  TOTAL bare reduced decode + invoke         {ms(r_total)}")
    print(f"  pipeline / bare full = {statistics.median(t_total) / statistics.median(b_total):.2f}x, "
          f"pipeline / bare reduced = {statistics.median(t_total) / statistics.median(r_total):.2f}x")

    print("\nwire bytes per case (binary frame, no base64):")
    rows = []
    for n in (1, 3):
        imgs = [(v, jpegs[k], args.width, args.height) for k, v in
                zip(range(n), ("dermoscopic", "close-up", "regional"))]
        cls = clf.classify_jpeg(jpegs[0])
        header = header_for(imgs, cls, assess(jpegs[0], "dermoscopic", qs))
        jpeg_bytes = sum(len(j) for _, j, _, _ in imgs)
        wire = len(encode_case(header, [j for _, j, _, _ in imgs]))
        limit = 1.02 * jpeg_bytes + 4096
        ok = wire <= limit
        rows.append({"images": n, "jpeg_bytes": jpeg_bytes, "wire_bytes": wire, "overhead": wire - jpeg_bytes,
                     "ratio": wire / jpeg_bytes, "limit": int(limit), "ok": ok})
        print(f"  {n} image(s): JPEG {jpeg_bytes:>10,d} B  wire {wire:>10,d} B  overhead {wire - jpeg_bytes:,d} B "
              f"({wire / jpeg_bytes:.5f}x)  limit 1.02xJPEG+4KB = {int(limit):,d} B  {'OK' if ok else 'OVER'}")
    print(json.dumps({"capture_to_verdict_ms": round(statistics.median(t_total) * 1e3, 1),
                      "bare_decode_invoke_ms": round(statistics.median(b_total) * 1e3, 1),
                      "bare_reduced_decode_invoke_ms": round(statistics.median(r_total) * 1e3, 1),
                      "wire": rows}))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
