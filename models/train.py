"""Fine-tune EfficientNet-Lite0 on an ISIC-format folder (CPU or CUDA, same code).

    python -m models.train --data ../shared/data/ham10000 --out models/work/run1

All images are decoded once into memory; augmentation runs as tensor ops on
the training device (rotation by any angle, flips, scale, translation, colour
and brightness jitter, gamma, blur; with ``--acquisition-aug`` also resolution loss and, on
the CPU, JPEG re-encoding), which keeps a GPU busy and a CPU run
simple. Class imbalance is handled with a class-weighted cross-entropy.
Writes ``log.txt``, ``ckpt.pt`` (resumable, each epoch), ``best.pt`` (the
EMA weights with the best validation score) and ``preds.npz`` (float
probabilities of the validation and test splits).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.data import LABELS, jpeg_roundtrip, load_rgb, read_isic_folder, split
from models.metrics import summary
from models.net import MEAN, STD, EfficientNetLite0, load_imagenet


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ISIC-format folder (images/ + metadata.csv)")
    p.add_argument("--out", required=True, help="run folder (log, checkpoints, predictions)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=2e-5)
    p.add_argument("--class-weight-power", type=float, default=1.0,
                   help="cross-entropy weight per class = (1/count)^power (1 = fully balanced)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0 = off), applied to half the batches")
    p.add_argument("--acquisition-aug", type=float, default=0.0,
                   help="probability of a JPEG re-encode (quality 30-90) and, separately, of a resolution loss "
                        "(down by 1.5-4x and back) per training image; 0 = off (the shipped model)")
    p.add_argument("--init", default=None,
                   help="start from these weights (a best.pt) instead of ImageNet's, e.g. to fine-tune with "
                        "--acquisition-aug")
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument("--limit", type=int, default=0, help="use only N images (smoke tests)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads when training on the CPU")
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_all(paths, size: int) -> np.ndarray:
    """Decode every image into one uint8 NHWC array."""
    with ThreadPoolExecutor(max(2, (os.cpu_count() or 2))) as ex:
        return np.stack(list(tqdm(ex.map(lambda p: load_rgb(p, size), paths), total=len(paths),
                                  desc="decode", leave=False)))


def augment(x: torch.Tensor, size: int, lowres_p: float = 0.0) -> torch.Tensor:
    """Random dermoscopy-safe augmentation of a uint8 NCHW batch; returns normalised float NCHW.

    ``lowres_p``: probability per image of a resolution loss (down by 1.5-4x, bilinear, and back).
    """
    n, dev = x.shape[0], x.device
    x = x.float() / 255.0
    if lowres_p > 0:  # off: no random draws, so that runs without it reproduce bit for bit
        low = torch.rand(n, device=dev) < lowres_p
        for i in torch.nonzero(low).flatten().tolist():
            f = float(torch.empty(1).uniform_(1.5, 4.0))
            small = F.interpolate(x[i:i + 1], scale_factor=1 / f, mode="bilinear", antialias=True,
                                  align_corners=False)
            x[i:i + 1] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    ang = torch.rand(n, device=dev) * 2 * math.pi
    zoom = torch.empty(n, device=dev).uniform_(0.8, 1.25)  # >1 zooms in
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    tx, ty = (torch.rand(2, n, device=dev) - 0.5) * 0.16
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # colour: brightness, contrast, saturation, per-channel gain (white balance), gamma
    b = torch.empty(n, 1, 1, 1, device=dev).uniform_(0.75, 1.25)
    c = torch.empty(n, 1, 1, 1, device=dev).uniform_(0.75, 1.3)
    s = torch.empty(n, 1, 1, 1, device=dev).uniform_(0.7, 1.3)
    g = torch.empty(n, 3, 1, 1, device=dev).uniform_(0.9, 1.1)
    gamma = torch.empty(n, 1, 1, 1, device=dev).uniform_(0.8, 1.25)
    x = x * b * g
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    grey = x.mean(1, keepdim=True)
    x = (x - grey) * s + grey
    x = x.clamp(0, 1) ** gamma
    # occasional defocus blur
    blur = torch.rand(n, device=dev) < 0.2
    if blur.any():
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=dev)
        k = (k / k.sum())
        xb = x[blur]
        xb = F.conv2d(F.pad(xb, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
        xb = F.conv2d(F.pad(xb, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
        x[blur] = xb
    return (x * 255.0 - MEAN) / STD


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> normalised float NCHW (no augmentation)."""
    return (x.float() - MEAN) / STD


@torch.no_grad()
def predict(model, images: torch.Tensor, device, batch: int = 256, tta: bool = False) -> np.ndarray:
    """Softmax probabilities for a uint8 NCHW tensor (optionally averaged over flips)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch].to(device))
        views = [x, x.flip(3), x.flip(2), x.flip(2).flip(3)] if tta else [x]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            p = sum(torch.softmax(model(v).float(), 1) for v in views) / len(views)
        out.append(p.cpu())
    return torch.cat(out).numpy()


def main(argv=None) -> None:
    """Train and write the run folder."""
    a = parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.txt", "a")

    def say(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    seed_all(a.seed)
    np_rng = np.random.default_rng(a.seed)  # JPEG re-encodes (--acquisition-aug)
    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                          (a.device if a.device != "auto" else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(a.threads)
    items = read_isic_folder(a.data)
    if a.limit:
        items = items[: a.limit]
    parts = split(items, seed=0)
    say(f"args {json.dumps(vars(a))}")
    say(f"device {device}; images {len(items)}; " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    arr = load_all([it.path for it in items], a.size)
    labels = np.array([it.label for it in items])
    imgs = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    tr = parts["train"]
    counts = np.bincount(labels[tr], minlength=len(LABELS)).astype(float)
    say("train counts " + ", ".join(f"{l} {int(c)}" for l, c in zip(LABELS, counts)))
    w = (1.0 / np.maximum(counts, 1)) ** a.class_weight_power
    w = w / (w * counts).sum() * counts.sum()
    class_w = torch.tensor(w, dtype=torch.float32, device=device)

    model = EfficientNetLite0(len(LABELS), dropout=a.dropout).to(device)
    if a.init:
        model.load_state_dict(torch.load(a.init, map_location="cpu"))
        say(f"initial weights {a.init}")
    else:
        load_imagenet(model)
    model = model.to(memory_format=torch.channels_last)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(a.ema), use_buffers=True)
    head = [p for n, p in model.named_parameters() if n.startswith("_fc.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("_fc.")]
    opt = torch.optim.AdamW([{"params": body, "lr": a.lr}, {"params": head, "lr": a.lr * 3}], weight_decay=a.wd)
    steps_per_epoch = max(1, len(tr) // a.batch)
    total = a.epochs * steps_per_epoch
    warm = min(300, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warm)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))

    start_epoch, best = 0, -1.0
    ck = out / "ckpt.pt"
    if ck.exists():
        st = torch.load(ck, map_location=device)
        model.load_state_dict(st["model"]); ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"]); sched.load_state_dict(st["sched"])
        start_epoch, best = st["epoch"] + 1, st["best"]
        say(f"resumed at epoch {start_epoch}")

    tr_imgs, tr_lab = imgs[tr].to(device), torch.from_numpy(labels[tr]).to(device)
    val_imgs = imgs[parts["val"]]
    for epoch in range(start_epoch, a.epochs):
        model.train()
        perm = torch.randperm(len(tr), device=device)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{a.epochs}", leave=False)
        tot = 0.0
        for step in bar:
            idx = perm[step * a.batch:(step + 1) * a.batch]
            batch = tr_imgs[idx]
            if a.acquisition_aug > 0:  # JPEG on the CPU (OpenCV), the rest on the device
                nhwc = jpeg_roundtrip(batch.permute(0, 2, 3, 1).cpu().numpy(), np_rng, a.acquisition_aug)
                batch = torch.from_numpy(nhwc).permute(0, 3, 1, 2).to(device)
            x = augment(batch, a.size, a.acquisition_aug).contiguous(memory_format=torch.channels_last)
            y = tr_lab[idx]
            lam, j = 1.0, None
            if a.mixup > 0 and random.random() < 0.5:
                lam = float(np.random.beta(a.mixup, a.mixup))
                j = torch.randperm(len(idx), device=device)
                x = lam * x + (1 - lam) * x[j]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=class_w, label_smoothing=a.label_smoothing)
            if j is not None:
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits.float(), y[j], weight=class_w,
                                                                label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step(); sched.step(); ema.update_parameters(model)
            tot += loss.item()
            bar.set_postfix(loss=f"{tot / (step + 1):.3f}")
        msg = f"epoch {epoch + 1} loss {tot / steps_per_epoch:.4f} lr {sched.get_last_lr()[0]:.2e}"
        if epoch >= a.epochs // 3 or epoch == a.epochs - 1:
            pv = predict(ema.module, val_imgs, device)
            m = summary(labels[parts["val"]], pv)
            score = m["balanced_accuracy"] + m["auc"]["mel"]
            msg += f" val bal_acc {m['balanced_accuracy']:.4f} mel_auc {m['auc']['mel']:.4f}"
            if score > best:
                best = score
                torch.save({k: v.detach().float().cpu() for k, v in ema.module.state_dict().items()}, out / "best.pt")
                msg += " *"
        say(msg)
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "epoch": epoch, "best": best}, ck)

    final = EfficientNetLite0(len(LABELS)).to(device)
    final.load_state_dict(torch.load(out / "best.pt", map_location=device))
    preds = {}
    for name in ("val", "test"):
        idx = parts[name]
        for tta in (False, True):
            preds[f"{name}{'_tta' if tta else ''}"] = predict(final, imgs[idx], device, tta=tta)
        preds[f"{name}_labels"] = labels[idx]
        preds[f"{name}_ids"] = np.array([items[i].path.stem for i in idx])
        m = summary(labels[idx], preds[name])
        say(f"best EMA on {name}: bal_acc {m['balanced_accuracy']:.4f} mel_auc {m['auc']['mel']:.4f} "
            f"macro_auc {m['macro_auc']:.4f}")
    np.savez_compressed(out / "preds.npz", **preds)
    say("done")


if __name__ == "__main__":
    main()
