"""Predictions of the second model's GPU runs: each run's outputs, saved weights, and probability-averaged ensembles.

    python -m models.gpu_run predict --weights OUT/main-step1316.pt --pack ... --out DIR   # main.npz for weights
    python -m models.gpu_predict extract OUT/preds.npz reg-sog=main --out DIR   # a plan run as main.npz

:func:`write_predictions` writes a run's ``<name>.npz`` (probabilities of each evaluated split, without
and optionally with 4-flip TTA, with indices, labels, sources and ids; PH2's canvases where given) and
its figures; :func:`ensemble_figures` averages several runs' probabilities, as a kiosk running all of
them would (at N times the inference time).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np


def write_predictions(model, imgs, meta, labels, source, evals, dev, path, info, say, tta: bool = True,
                      ph2=None) -> None:
    """Write ``path`` (.npz): probabilities without and (``tta``) with 4-flip TTA, indices, labels, sources.

    ``ph2``: (canvases, labels, ids) of PH2 (``models.canvas.load_ph2``), predicted as ``ph2_*``.
    """
    import torch

    from models.data import LABELS
    from models.metrics import mel_vs_nv_auc, run_figures
    from models.train import predict

    res = {"labels": np.array(LABELS)}
    for k, idx in evals.items():
        x = torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2)
        res[f"{k}_p"] = predict(model, x, dev, batch=512).astype(np.float16)
        if tta:
            res[f"{k}_p_tta"] = predict(model, x, dev, batch=512, tta=True).astype(np.float16)
        res[f"{k}_idx"] = idx
        res[f"{k}_y"] = labels[idx]
        res[f"{k}_source"] = source[idx]
        res[f"{k}_isic_id"] = meta["isic_id"][idx].astype(str)
        info[k] = run_figures(labels[idx], res[f"{k}_p"].astype(np.float32), source[idx] if k == "val" else None)
        say(f"{k}: {info[k]}")
    if ph2 is not None:
        x = torch.from_numpy(ph2[0]).permute(0, 3, 1, 2)
        res["ph2_p"] = predict(model, x, dev, batch=512).astype(np.float16)
        res["ph2_y"], res["ph2_id"] = ph2[1], ph2[2]
        info["ph2"] = {"n": int(len(ph2[1])), "mel_vs_nv_auc": mel_vs_nv_auc(ph2[1], res["ph2_p"].astype(np.float32))}
        say(f"ph2: {info['ph2']}")
    np.savez_compressed(path, **res)


def ensemble_figures(members: list[dict]) -> dict:
    """Figures of the probability average of runs' predictions (each a loaded ``<run>.npz``) per split."""
    from models.metrics import mel_vs_nv_auc, run_figures

    out = {"members": len(members)}
    for k in ("val", "test", "heldout"):
        if not all(f"{k}_p" in m for m in members):
            continue
        idx = members[0][f"{k}_idx"]
        if not all(np.array_equal(m[f"{k}_idx"], idx) for m in members):
            raise ValueError(f"the ensemble's members predicted different {k} images")
        p = np.mean([m[f"{k}_p"].astype(np.float32) for m in members], axis=0)
        out[k] = run_figures(members[0][f"{k}_y"], p, members[0][f"{k}_source"].astype(str) if k == "val" else None)
    if all("ph2_p" in m for m in members):
        p = np.mean([m["ph2_p"].astype(np.float32) for m in members], axis=0)
        out["ph2"] = {"n": int(len(p)), "mel_vs_nv_auc": mel_vs_nv_auc(members[0]["ph2_y"], p)}
    return out


def save_fp16(model, path: Path) -> None:
    """Save ``model``'s state dict in float16 (integers as they are), atomically."""
    import torch

    sd = {k: v.detach().to("cpu", torch.float16 if v.dtype.is_floating_point else v.dtype)
          for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(sd, tmp)
    os.replace(tmp, path)


def run_predict(a) -> None:
    """``main.npz`` (validation and test predictions) for saved weights, e.g. a run's check (``--weights``)."""
    import torch

    from models.data import LABELS
    from models.net import EfficientNetLite0
    from models.sources import decode_pack, pack_meta, split_grouped

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                       (a.device if a.device != "auto" else "cpu"))
    torch.set_num_threads(max(1, a.threads or os.cpu_count() or 1))
    m = pack_meta(a.pack)
    labels, source = m["label"], m["source"].astype(str)
    parts = split_grouped(m["group"].astype(str), labels, source, seed=0)
    evals = {"val": parts["val"], "test": parts["test"]}
    need = np.concatenate(list(evals.values()))
    boxes = None
    if a.crop == "lesion":
        from models.canvas import load_boxes

        boxes = load_boxes(a.boxes, m["isic_id"])
    imgs = np.zeros((len(labels), a.size, a.size, 3), np.uint8)  # only the evaluated rows are decoded
    imgs[need] = decode_pack(a.pack, a.size, a.threads, indices=need, boxes=boxes, colour=a.colour)[0]
    model = EfficientNetLite0(len(LABELS))
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                           for k, v in torch.load(a.weights, map_location="cpu").items()})
    model = model.to(dev).eval()
    info = {"weights": str(a.weights)}
    ph2 = None
    if a.ph2:
        from models.canvas import load_ph2

        ph2 = load_ph2(a.ph2, a.crop, a.colour, a.size)
    write_predictions(model, imgs, m, labels, source, evals, dev, out / "main.npz", info,
                      lambda msg: print(f"{time.strftime('%H:%M:%S')} [predict] {msg}", flush=True),
                      tta=not a.no_tta, ph2=ph2)
    (out / "predict.summary.json").write_text(json.dumps(info, indent=2) + "\n")


def extract(preds: Path | str, pairs: list[str], out: Path | str) -> list[Path]:
    """Split a plan's ``preds.npz`` into per-run files for ``models.evaluate_v2`` / ``models.build --runs``.

    ``pairs``: ``RUN=NAME`` (e.g. ``reg-sog=main``, ``loso-isic2017-reg-sog=loso-isic2017``): the run's
    arrays are written to ``out/NAME.npz`` under their own keys.
    """
    z = np.load(preds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for pair in pairs:
        run, _, name = pair.partition("=")
        keys = [k for k in z.files if k.startswith(f"{run}__")]
        if not keys or not name:
            raise SystemExit(f"{preds}: no run {run!r} (it has {sorted({k.split('__')[0] for k in z.files})}); "
                             "pairs are RUN=NAME")
        np.savez_compressed(out / f"{name}.npz", **{k[len(run) + 2:]: z[k] for k in keys})
        written.append(out / f"{name}.npz")
    return written


def main(argv=None) -> None:
    """CLI: ``extract`` (a plan's predictions as per-run files)."""
    import argparse

    p = argparse.ArgumentParser(description=extract.__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("preds")
    e.add_argument("pairs", nargs="+", help="RUN=NAME, e.g. reg-sog=main loso-isic2017-reg-sog=loso-isic2017")
    e.add_argument("--out", required=True)
    a = p.parse_args(argv)
    for f in extract(a.preds, a.pairs, a.out):
        print(f)


if __name__ == "__main__":
    main()
