"""One training run of the second model on one device (``python -m models.gpu_run child ...``).

The run decodes the pack into the kiosk's canvases (centre or lesion square, with or without colour
constancy: ``--crop``, ``--colour``), trains EfficientNet-Lite0 on a cosine schedule over its own time
(``--budget``) or step count (``--steps``, reproducible) with an EMA of its weights, and writes its
outputs as it goes. Regularisation beside the augmentation: mixup / CutMix (``--mixup``, ``--cutmix``,
``--mix-p``), dropout before the head (``--dropout``) and stochastic depth (``--drop-connect``, the
largest rate, reached by the last block). ``--select best`` keeps the EMA weights that scored best on
the run's validation split (``--select-metric``: ``mel_auc`` on the mixed-source validation, or
``source_mean_mel_auc``, the mean of each source's), checked every ``--eval-every`` seconds (or
``--eval-every-steps``), and ``--patience`` stops a run that has not improved for that many checks.
The defaults are the shipped model's recipe (``models.build.SHIPPED``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np


def run_kind(name: str, kind: str | None) -> str:
    """``main`` or ``loso-<fold>`` for a run called ``name`` (``--kind`` where the name alone does not say)."""
    from models.sources import LOSO_FOLDS

    kind = kind or name
    if kind == "main" or (kind.startswith("loso-") and kind[5:] in LOSO_FOLDS):
        return kind
    raise SystemExit(f"run {name}: unknown kind {kind!r}; use --kind main or loso-<{'|'.join(LOSO_FOLDS)}>")


def run_child(a) -> None:  # noqa: C901 - one linear training script
    """One training run: decode, train under the budget, choose, predict, write outputs."""
    import torch
    import torch.nn.functional as F

    from models.augment import augment_v2, mix_batch
    from models.data import LABELS
    from models.gpu_predict import save_fp16, write_predictions
    from models.metrics import run_figures
    from models.net import EfficientNetLite0, load_imagenet
    from models.sources import LOSO_FOLDS, decode_pack, pack_meta, split_grouped
    from models.train import predict

    t_start = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name, kind = a.name, run_kind(a.name, a.kind)

    def say(msg):
        print(f"{time.strftime('%H:%M:%S')} [{name} +{time.time() - t_start:5.1f}s] {msg}", flush=True)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    mix_rng = np.random.default_rng(a.seed + 1)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                       (a.device if a.device != "auto" else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(max(1, a.threads))
    meta = pack_meta(a.pack)
    assert tuple(meta["labels"]) == LABELS, (meta["labels"], LABELS)
    boxes = None
    if a.crop == "lesion":
        from models.canvas import load_boxes

        boxes = load_boxes(a.boxes, meta["isic_id"])
    keep = None  # --limit: a seeded sample of the pack, the only images decoded
    if a.limit:
        n = len(meta["label"])
        keep = np.sort(np.random.default_rng(0).choice(n, min(a.limit, n), replace=False))
        meta = {k: (v[keep] if k != "labels" else v) for k, v in meta.items()}
    imgs = decode_pack(a.pack, a.size, a.threads, indices=keep, boxes=boxes, colour=a.colour)[0]
    labels, source, group = meta["label"], meta["source"].astype(str), meta["group"].astype(str)
    ph2 = None
    if a.ph2:
        from models.canvas import load_ph2

        ph2 = load_ph2(a.ph2, a.crop, a.colour, a.size)
    say(f"decoded {len(labels)} images {imgs.shape[1:]} ({a.crop} square, colour {a.colour}) on {dev}")
    parts = split_grouped(group, labels, source, seed=0)
    if kind == "main":
        tr = parts["train"]
        evals = {"val": parts["val"], "test": parts["test"]}
    else:
        held = np.isin(source, LOSO_FOLDS[kind[5:]])
        tr = parts["train"][~held[parts["train"]]]
        evals = {"heldout": np.flatnonzero(held), "val": parts["val"][~held[parts["val"]]]}
    counts = np.bincount(labels[tr], minlength=len(LABELS)).astype(float)
    say(f"train {len(tr)}: " + ", ".join(f"{l} {int(c)}" for l, c in zip(LABELS, counts))
        + "; eval " + ", ".join(f"{k} {len(v)}" for k, v in evals.items()))
    w = (1.0 / np.maximum(counts, 1)) ** a.class_weight_power
    w = w / (w * counts).sum() * counts.sum()
    class_w = torch.tensor(w, dtype=torch.float32, device=dev)

    def make():
        return EfficientNetLite0(len(LABELS), dropout=a.dropout, drop_connect=a.drop_connect).to(dev)

    model = make()
    load_imagenet(model)
    model = model.to(memory_format=torch.channels_last)
    ema = make().to(memory_format=torch.channels_last)
    ema.load_state_dict(model.state_dict())
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    head = [p for n, p in model.named_parameters() if n.startswith("_fc.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("_fc.")]
    opt = torch.optim.AdamW([{"params": body, "lr": a.lr}, {"params": head, "lr": a.lr * 3}], weight_decay=a.wd,
                            fused=dev.type == "cuda")
    base = [g["lr"] for g in opt.param_groups]
    x_tr = torch.from_numpy(imgs[tr]).permute(0, 3, 1, 2).contiguous().to(dev)
    y_tr = torch.from_numpy(labels[tr]).to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(a.seed)
    cpu_gen = torch.Generator()
    cpu_gen.manual_seed(a.seed)
    ema_params = list(ema.state_dict().values())
    model_params = list(model.state_dict().values())
    float_pairs = [(e, m) for e, m in zip(ema_params, model_params) if e.dtype.is_floating_point]
    int_pairs = [(e, m) for e, m in zip(ema_params, model_params) if not e.dtype.is_floating_point]
    warm = 100
    train_budget = 0.0
    step, seen, t_train, last_eval, loss_avg = 0, 0, None, time.time(), 0.0
    info = {"kind": kind, "train_images": int(len(tr)), "eval": {k: int(len(v)) for k, v in evals.items()},
            "recipe": {k: getattr(a, k) for k in ("crop", "colour", "mixup", "cutmix", "mix_p", "dropout",
                                                   "drop_connect", "select", "select_metric", "seed", "lr", "wd")}}
    best = {"score": -1.0, "step": None, "state": None, "since": 0}
    checks = []
    keep_weights = kind == "main" or a.save_weights

    def check(tag):
        idx = evals["val"]
        p = predict(ema, torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2), dev, batch=512)
        m = run_figures(labels[idx], p, source[idx])
        score = m[a.select_metric]
        checks.append({"step": step, "mel_auc": m["mel_auc"], "source_mean_mel_auc": m["source_mean_mel_auc"],
                       "balanced_accuracy": m["balanced_accuracy"]})
        improved = a.select == "best" and score > best["score"]
        if improved:
            best.update(score=score, step=step, since=0,
                        state={k: v.detach().clone() for k, v in ema.state_dict().items()})
        else:
            best["since"] += 1
        say(f"{tag}: val bal_acc {m['balanced_accuracy']:.4f} mel_auc {m['mel_auc']:.4f} source-mean mel_auc "
            f"{m['source_mean_mel_auc']:.4f} malignant_auc {m['malignant_auc']:.4f} (step {step}, ema)"
            + (" *" if improved else ""))
        if keep_weights and (a.select == "last" or improved):  # a run stopped at its limit still leaves
            save_fp16(ema, out / f"{name}.pt")  # weights: the best so far, or the latest
        if keep_weights and a.keep_checks:
            save_fp16(ema, out / f"{name}-step{step}.pt")
        ema.eval()

    stop = False
    while not stop:
        perm = torch.randperm(len(tr), device=dev, generator=gen)
        for i in range(0, len(tr) - a.batch + 1 if len(tr) >= a.batch else 1, a.batch):
            if t_train is None and step == 1:
                t_train = time.time()  # after the first step (cuDNN autotuning, allocation)
                if a.budget:  # this run's budget counts from its start: decoding and warm-up included
                    train_budget = max(1.0, a.budget - (t_train - t_start) - a.reserve)
                    say(f"training for {train_budget:.0f} s")
            el = (time.time() - t_train) if t_train else 0.0
            frac = max(el / train_budget if train_budget else 0.0, step / a.steps if a.steps else 0.0)
            if frac >= 1.0 or (a.stop_at and step >= a.stop_at) or (a.patience and best["since"] >= a.patience):
                stop = True
                break
            f = min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * frac))
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * f
            idx = perm[i:i + a.batch]
            x = augment_v2(x_tr[idx], a.size, gen, cpu_gen, lowres_p=a.lowres_p)
            x, mperm, lam = mix_batch(x, gen, mix_rng, a.mixup, a.cutmix, a.mix_p)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                logits = model(x).float()
            y = y_tr[idx]
            loss = F.cross_entropy(logits, y, weight=class_w, label_smoothing=a.label_smoothing)
            if mperm is not None:
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y[mperm], weight=class_w,
                                                                label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            d = min(a.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_([e for e, _ in float_pairs], [m for _, m in float_pairs], 1 - d)
                for e, m in int_pairs:
                    e.copy_(m)
            step += 1
            seen += len(idx)
            if step % 50 == 0:
                loss_avg = loss.detach().item()
                rate = (seen - a.batch) / max(1e-6, time.time() - t_train) if t_train else 0
                say(f"step {step} frac {frac:.2f} loss {loss_avg:.3f} lr {opt.param_groups[0]['lr']:.2e} "
                    f"{rate:.0f} img/s")
            due = (step % a.eval_every_steps == 0) if a.eval_every_steps else (time.time() - last_eval > a.eval_every)
            if (kind == "main" or a.select == "best") and due:
                check("check")
                last_eval = time.time()
    t_end = time.time()
    info.update(steps=step, epochs=round(seen / len(tr), 2),
                train_s=round(t_end - (t_train or t_end), 1),
                img_per_s=round((seen - a.batch) / max(1e-6, t_end - (t_train or t_end)), 1))
    say(f"trained {step} steps, {info['epochs']} epochs, {info['img_per_s']} img/s")
    if a.select == "best":
        check("final")
        ema.load_state_dict(best["state"])
        info["chosen_step"] = best["step"]
        say(f"chose the EMA of step {best['step']} ({a.select_metric} {best['score']:.4f} on validation)")
    info["checks"] = checks
    if keep_weights:
        save_fp16(ema, out / f"{name}.pt")
    write_predictions(ema, imgs, meta, labels, source, evals, dev, out / f"{name}.npz", info, say,
                      tta=not a.no_tta, ph2=ph2)
    info["total_s"] = round(time.time() - t_start, 1)
    (out / f"{name}.summary.json").write_text(json.dumps(info))
    say("done")
