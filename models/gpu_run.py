"""The second model's training runs on one GPU under a wall-clock budget: the main model and the LOSO models.

    python -m models.gpu_run all --pack .devdata/pack.npz --out OUT --budget 450       # everything, concurrently
    python -m models.gpu_run child --name main --pack ... --out OUT --steps 2000       # one run (make model)
    python -m models.gpu_run all --runs main --pack ... --out OUT --budget 250         # the main model alone
    python -m models.gpu_run predict --weights OUT/main-step1316.pt --pack ... --out DIR   # main.npz for weights

``all`` starts one process per run (``main``: trained on the lesion-grouped training split of every
source; ``loso-<S>``: the same without source S, then predicting every image of S) and makes sure
everything ends inside ``--budget`` seconds: each run decodes the pack itself, trains on a cosine
schedule over its own time (``--budget``) or step count (``--steps``, reproducible), keeps an EMA of
its weights, and writes its outputs as it goes (the main model's fp16 EMA weights at each
evaluation), so a run stopped at its limit still leaves something. Outputs, at most 8 files:
``main.pt``, ``main.npz``, ``loso-<S>.npz`` (probabilities without and with 4-flip TTA, indices into
the pack, labels, sources), ``summary.json`` (steps, images/s, figures) and what the caller tees.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LOSO_BUDGET_SHARE = 0.72  # the LOSO runs stop earlier; the main run has the GPU to itself after them


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("all", "child", "predict"))
    p.add_argument("--weights", help="predict: the weights (.pt state dict) to predict with")
    p.add_argument("--no-tta", action="store_true", help="predict: no 4-flip TTA probabilities (5x less work on a CPU)")
    p.add_argument("--pack", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="main", help="child: main or loso-<source>")
    p.add_argument("--runs", default="main,loso-ham10000,loso-isic2019-bcn,loso-isic2017")
    p.add_argument("--budget", type=float, default=0, help="seconds for everything (all) / this run's training")
    p.add_argument("--steps", type=int, default=0, help="train this many steps (schedule by steps, not time)")
    p.add_argument("--stop-at", type=int, default=0, help="stop after this step (the --steps schedule cut short)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--wd", type=float, default=5e-5)
    p.add_argument("--class-weight-power", type=float, default=0.6)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--lowres-p", type=float, default=0.25)
    p.add_argument("--eval-every", type=float, default=90.0, help="seconds between validation checks (main)")
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--limit", type=int, default=0, help="use N images of the pack (smoke tests)")
    p.add_argument("--threads", type=int, default=0, help="decode threads (0: CPUs / runs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--keep-checks", action="store_true",
                   help="main: also keep the EMA weights of each validation check (main-step<N>.pt)")
    return p.parse_args(argv)


def run_all(a) -> None:
    """Start one child per run, share the budget, stop stragglers, write summary.json."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runs = [r for r in a.runs.split(",") if r]
    threads = a.threads or max(2, (os.cpu_count() or 2) // len(runs))
    procs = {}
    for r in runs:
        budget = a.budget * (LOSO_BUDGET_SHARE if r.startswith("loso") and len(runs) > 1 else 1.0)
        cmd = [sys.executable, "-m", "models.gpu_run", "child", "--name", r, "--pack", a.pack, "--out", a.out,
               "--budget", str(budget - 8), "--threads", str(threads)]
        for k in ("steps", "stop_at", "size", "batch", "lr", "wd", "class_weight_power", "label_smoothing", "ema",
                  "lowres_p", "eval_every", "seed", "limit", "device"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
        cmd += ["--keep-checks"] if a.keep_checks else []
        procs[r] = subprocess.Popen(cmd)
    hard = t0 + a.budget + 5 if a.budget else None
    while any(p.poll() is None for p in procs.values()):
        if hard and time.time() > hard:
            for r, p in procs.items():
                if p.poll() is None:
                    print(f"[all] {r} past the budget: terminated", flush=True)
                    p.terminate()
            time.sleep(3)
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.5)
    summary = {}
    for r in runs:
        f = out / f"{r}.summary.json"
        if f.exists():
            summary[r] = json.loads(f.read_text())
            f.unlink()
        summary.setdefault(r, {})["returncode"] = procs[r].poll()
    summary["wall_s"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[all] done in {summary['wall_s']} s: " + ", ".join(f"{r} rc={summary[r]['returncode']}" for r in runs),
          flush=True)


def run_child(a) -> None:  # noqa: C901 - one linear training script
    """One training run: decode, train under the budget, predict, write outputs."""
    import torch
    import torch.nn.functional as F

    from models.augment import augment_v2
    from models.data import LABELS
    from models.metrics import summary
    from models.net import EfficientNetLite0, load_imagenet
    from models.sources import LOSO_FOLDS, decode_pack, split_grouped
    from models.train import predict

    t_start = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = a.name

    def say(msg):
        print(f"{time.strftime('%H:%M:%S')} [{name} +{time.time() - t_start:5.1f}s] {msg}", flush=True)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                       (a.device if a.device != "auto" else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(max(1, a.threads))
    imgs, meta = decode_pack(a.pack, a.size, a.threads)
    assert tuple(meta["labels"]) == LABELS, (meta["labels"], LABELS)
    labels, source, group = meta["label"], meta["source"].astype(str), meta["group"].astype(str)
    if a.limit:
        keep = np.sort(np.random.default_rng(0).choice(len(labels), min(a.limit, len(labels)), replace=False))
        imgs, labels, source, group = imgs[keep], labels[keep], source[keep], group[keep]
        meta = {k: (v[keep] if k != "labels" else v) for k, v in meta.items()}
    say(f"decoded {len(labels)} images {imgs.shape[1:]} on {dev}")
    parts = split_grouped(group, labels, source, seed=0)
    if name == "main":
        tr = parts["train"]
        evals = {"val": parts["val"], "test": parts["test"]}
    elif name.startswith("loso-") and name[5:] in LOSO_FOLDS:
        held = np.isin(source, LOSO_FOLDS[name[5:]])
        tr = parts["train"][~held[parts["train"]]]
        evals = {"heldout": np.flatnonzero(held), "val": parts["val"][~held[parts["val"]]]}
    else:
        raise SystemExit(f"unknown run {name}")
    counts = np.bincount(labels[tr], minlength=len(LABELS)).astype(float)
    say(f"train {len(tr)}: " + ", ".join(f"{l} {int(c)}" for l, c in zip(LABELS, counts))
        + "; eval " + ", ".join(f"{k} {len(v)}" for k, v in evals.items()))
    w = (1.0 / np.maximum(counts, 1)) ** a.class_weight_power
    w = w / (w * counts).sum() * counts.sum()
    class_w = torch.tensor(w, dtype=torch.float32, device=dev)

    model = EfficientNetLite0(len(LABELS)).to(dev)
    load_imagenet(model)
    model = model.to(memory_format=torch.channels_last)
    ema = EfficientNetLite0(len(LABELS)).to(dev).to(memory_format=torch.channels_last)
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
    reserve = 30.0  # seconds kept for the final predictions and saves
    train_budget = 0.0
    step, seen, t_train, last_eval, loss_avg = 0, 0, None, time.time(), 0.0
    info = {"train_images": int(len(tr)), "eval": {k: int(len(v)) for k, v in evals.items()}}

    def save_weights():
        if name == "main":
            sd = {k: v.detach().to("cpu", torch.float16 if v.dtype.is_floating_point else v.dtype)
                  for k, v in ema.state_dict().items()}
            torch.save(sd, out / "main.pt.tmp")
            os.replace(out / "main.pt.tmp", out / "main.pt")

    def quick_eval(tag):
        idx = evals["val"]
        p = predict(ema, torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2), dev, batch=512)
        m = summary(labels[idx], p)
        say(f"{tag}: val bal_acc {m['balanced_accuracy']:.4f} mel_auc {m['auc']['mel']:.4f} "
            f"malignant_auc {m['malignant_auc']:.4f} (step {step}, ema)")
        return m

    while True:
        perm = torch.randperm(len(tr), device=dev, generator=gen)
        for i in range(0, len(tr) - a.batch + 1 if len(tr) >= a.batch else 1, a.batch):
            if t_train is None and step == 1:
                t_train = time.time()  # after the first step (cuDNN autotuning, allocation)
                if a.budget:  # this run's budget counts from its start: decoding and warm-up included
                    train_budget = max(1.0, a.budget - (t_train - t_start) - reserve)
                    say(f"training for {train_budget:.0f} s")
            el = (time.time() - t_train) if t_train else 0.0
            frac = max(el / train_budget if train_budget else 0.0, step / a.steps if a.steps else 0.0)
            if frac >= 1.0 or (a.stop_at and step >= a.stop_at):
                break
            f = min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * frac))
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * f
            idx = perm[i:i + a.batch]
            x = augment_v2(x_tr[idx], a.size, gen, cpu_gen, lowres_p=a.lowres_p).contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y_tr[idx], weight=class_w, label_smoothing=a.label_smoothing)
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
            if name == "main" and time.time() - last_eval > a.eval_every:
                quick_eval("check")
                save_weights()
                if a.keep_checks:
                    shutil.copyfile(out / "main.pt", out / f"main-step{step}.pt")
                ema.eval()
                last_eval = time.time()
        else:
            continue
        break
    t_end = time.time()
    info.update(steps=step, epochs=round(seen / len(tr), 2),
                train_s=round(t_end - (t_train or t_end), 1),
                img_per_s=round((seen - a.batch) / max(1e-6, t_end - (t_train or t_end)), 1))
    say(f"trained {step} steps, {info['epochs']} epochs, {info['img_per_s']} img/s")
    save_weights()
    write_predictions(ema, imgs, meta, labels, source, evals, dev, out / f"{name}.npz", info, say)
    info["total_s"] = round(time.time() - t_start, 1)
    (out / f"{name}.summary.json").write_text(json.dumps(info))
    say("done")


def write_predictions(model, imgs, meta, labels, source, evals, dev, path, info, say, tta: bool = True) -> None:
    """Write ``path`` (.npz): probabilities without and (``tta``) with 4-flip TTA, indices, labels, sources."""
    import torch

    from models.data import LABELS
    from models.metrics import summary
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
        m = summary(labels[idx], res[f"{k}_p"].astype(np.float32))
        info[k] = {"balanced_accuracy": round(m["balanced_accuracy"], 4), "mel_auc": round(m["auc"]["mel"], 4),
                   "malignant_auc": round(m["malignant_auc"], 4)}
        say(f"{k}: {info[k]}")
    np.savez_compressed(path, **res)


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
    imgs = np.zeros((len(labels), a.size, a.size, 3), np.uint8)  # only the evaluated rows are decoded
    imgs[need] = decode_pack(a.pack, a.size, a.threads, indices=need)[0]
    model = EfficientNetLite0(len(LABELS))
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                           for k, v in torch.load(a.weights, map_location="cpu").items()})
    model = model.to(dev).eval()
    info = {"weights": str(a.weights)}
    write_predictions(model, imgs, m, labels, source, evals, dev, out / "main.npz", info,
                      lambda msg: print(f"{time.strftime('%H:%M:%S')} [predict] {msg}", flush=True), tta=not a.no_tta)
    (out / "predict.summary.json").write_text(json.dumps(info, indent=2) + "\n")


def main(argv=None) -> None:
    """Entry point."""
    a = parse_args(argv)
    if os.environ.get("LITE0_WEIGHTS") is None and Path(".devdata/lite0.pth").exists():
        os.environ["LITE0_WEIGHTS"] = str(Path(".devdata/lite0.pth").resolve())
    {"all": run_all, "child": run_child, "predict": run_predict}[a.mode](a)


if __name__ == "__main__":
    main()
