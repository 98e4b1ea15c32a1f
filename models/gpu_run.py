"""The second model's training runs on one GPU under a wall-clock budget: the main model, LOSO models, variants.

    python -m models.gpu_run all --pack .devdata/pack.npz --out OUT --budget 450       # main + 3 LOSO, concurrently
    python -m models.gpu_run child --name main --pack ... --out OUT --steps 2000       # one run (make model)
    python -m models.gpu_run all --runs main --pack ... --out OUT --budget 250         # the main model alone
    python -m models.gpu_run plan --plan models/plans/h200.json --pack ... --work /tmp/w --out OUT  # variants
    python -m models.gpu_run predict --weights OUT/main-step1316.pt --pack ... --out DIR   # main.npz for weights

``all`` starts one process per run (``main``: trained on the lesion-grouped training split of every
source; ``loso-<S>``: the same without source S, then predicting every image of S) and makes sure
everything ends inside ``--budget`` seconds: each run (``models.gpu_child``) decodes the pack itself,
trains on a cosine schedule over its own time (``--budget``) or step count (``--steps``, reproducible),
keeps an EMA of its weights, and writes its outputs as it goes (a main model's fp16 EMA weights at
each check), so a run stopped at its limit still leaves something. Outputs: ``main.pt``, ``main.npz``,
``loso-<S>.npz`` (probabilities without and with 4-flip TTA, indices into the pack, labels, sources),
``summary.json`` (steps, images/s, figures).

``plan`` does the same for the runs a JSON plan names (``models/plans/``: each run's name, kind,
options and share of the budget; the options every run shares; probability-averaged ensembles; whose
weights come back), with the runs' files in ``--work``, and then gathers into ``--out`` at most 7
files, inside a GPU machine's return limits: ``preds.npz`` (every run's predictions, keys
``<run>__<key>``), ``summary.json`` (every run's figures, checks and chosen step, and the ensembles')
and the weights of at most five runs (``<run>.pt``, float16, 6.9 MB each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LOSO_BUDGET_SHARE = 0.72  # the LOSO runs stop earlier; the main run has the GPU to itself after them
#: Child options ``all`` and ``plan`` pass on (``plan``'s runs may override them).
FORWARD = ("steps", "stop_at", "size", "batch", "lr", "wd", "class_weight_power", "label_smoothing", "ema",
           "lowres_p", "eval_every", "eval_every_steps", "seed", "limit", "device", "crop", "boxes", "colour",
           "ph2", "mixup", "cutmix", "mix_p", "dropout", "drop_connect", "select", "select_metric", "patience",
           "reserve")
FLAGS = ("keep_checks", "no_tta", "save_weights")
MAX_WEIGHTS = 5  # preds.npz, summary.json, the caller's log and five weights: 8 files


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("all", "child", "predict", "plan"))
    p.add_argument("--weights", help="predict: the weights (.pt state dict) to predict with")
    p.add_argument("--no-tta", action="store_true", help="no 4-flip TTA probabilities (5x less prediction work)")
    p.add_argument("--pack", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--plan", help="plan: the JSON plan (models/plans/*.json)")
    p.add_argument("--work", help="plan: where the runs write (default OUT/work; only OUT's gathered files count)")
    p.add_argument("--name", default="main", help="child: the run's name (main, loso-<source>, or any with --kind)")
    p.add_argument("--kind", help="child: main or loso-<source> where the name does not say")
    p.add_argument("--runs", default="main,loso-ham10000,loso-isic2019-bcn,loso-isic2017")
    p.add_argument("--budget", type=float, default=0, help="seconds for everything (all, plan) / this run's training")
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
    p.add_argument("--crop", choices=("centre", "lesion"), default="centre",
                   help="train on the centre square or the kiosk's lesion square (needs --boxes)")
    p.add_argument("--boxes", default=".devdata/lesion_boxes.npz", help="lesion squares (models.canvas boxes)")
    p.add_argument("--colour", choices=("none", "shades-of-gray"), default="none",
                   help="colour constancy of the canvas (edge.colour; the manifest's input.colour at run time)")
    p.add_argument("--ph2", default="", help="PH2 canvases (models.canvas ph2) to predict at the end")
    p.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0: off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (0: off)")
    p.add_argument("--mix-p", type=float, default=0.5, help="share of batches mixed where mixup or CutMix is on")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the head")
    p.add_argument("--drop-connect", type=float, default=0.2, help="stochastic depth of the last block")
    p.add_argument("--select", choices=("last", "best"), default="last",
                   help="last: the final EMA weights; best: the best-scoring check's on validation")
    p.add_argument("--select-metric", choices=("mel_auc", "source_mean_mel_auc"), default="mel_auc")
    p.add_argument("--patience", type=int, default=0, help="stop after this many checks without improvement")
    p.add_argument("--eval-every", type=float, default=90.0, help="seconds between validation checks")
    p.add_argument("--eval-every-steps", type=int, default=0, help="steps between validation checks (0: by time)")
    p.add_argument("--reserve", type=float, default=30.0, help="seconds of the budget kept for the final outputs")
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--limit", type=int, default=0, help="use N images of the pack (smoke tests)")
    p.add_argument("--threads", type=int, default=0, help="decode threads (0: CPUs / runs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--keep-checks", action="store_true",
                   help="main: also keep the EMA weights of each validation check (<name>-step<N>.pt)")
    p.add_argument("--save-weights", action="store_true", help="child: write weights for a LOSO run too")
    return p.parse_args(argv)


def forwarded(a) -> list[str]:
    """The child options of ``a`` as command-line arguments."""
    args = []
    for k in FORWARD:
        args += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    return args + [f"--{k.replace('_', '-')}" for k in FLAGS if getattr(a, k)]


def launch(a, runs: list[dict], out: Path) -> dict:
    """Start one child per run (``name``, ``args``, ``share`` of the budget), stop stragglers; their figures."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    threads = a.threads or max(2, (os.cpu_count() or 2) // len(runs))
    procs = {}
    for r in runs:
        budget = a.budget * r.get("share", 1.0)
        cmd = [sys.executable, "-m", "models.gpu_run", "child", "--name", r["name"], "--pack", a.pack,
               "--out", str(out), "--budget", str(max(0.0, budget - 8) if a.budget else 0), "--threads", str(threads),
               *forwarded(a), *r.get("args", [])]
        procs[r["name"]] = subprocess.Popen(cmd)
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
    for r in procs:
        f = out / f"{r}.summary.json"
        if f.exists():
            summary[r] = json.loads(f.read_text())
            f.unlink()
        summary.setdefault(r, {})["returncode"] = procs[r].poll()
    summary["wall_s"] = round(time.time() - t0, 1)
    print(f"[all] done in {summary['wall_s']} s: " + ", ".join(f"{r} rc={summary[r]['returncode']}" for r in procs),
          flush=True)
    return summary


def run_all(a) -> None:
    """Start one child per run of ``--runs``, share the budget, stop stragglers, write summary.json."""
    names = [r for r in a.runs.split(",") if r]
    runs = [{"name": r, "share": LOSO_BUDGET_SHARE if r.startswith("loso") and len(names) > 1 else 1.0}
            for r in names]
    summary = launch(a, runs, Path(a.out))
    (Path(a.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def read_plan(path: Path | str) -> dict:
    """A plan: ``runs`` (name, kind, args, share), ``common`` args, ``ensembles``, ``weights``."""
    plan = json.loads(Path(path).read_text())
    names = [r.get("name") for r in plan.get("runs", [])]
    if not names or len(set(names)) != len(names) or not all(names):
        raise SystemExit(f"{path}: 'runs' must list runs with distinct names")
    for ens, members in plan.get("ensembles", {}).items():
        if set(members) - set(names):
            raise SystemExit(f"{path}: ensemble {ens} names runs the plan does not have: {set(members) - set(names)}")
    if len(plan.get("weights", [])) > MAX_WEIGHTS or set(plan.get("weights", [])) - set(names):
        raise SystemExit(f"{path}: 'weights' must name at most {MAX_WEIGHTS} of the plan's runs")
    for r in plan["runs"]:
        r["args"] = [*plan.get("common", []), *(["--kind", r["kind"]] if r.get("kind") else []), *r.get("args", [])]
    return plan


def run_plan(a) -> None:
    """The plan's runs side by side under ``--budget``, then the outputs gathered into ``--out`` (at most 7 files)."""
    from models.gpu_predict import ensemble_figures

    plan = read_plan(a.plan)
    out = Path(a.out)
    work = Path(a.work) if a.work else out / "work"
    if not a.budget:
        a.budget = float(plan.get("budget", 0))
    summary = launch(a, plan["runs"], work)
    preds, loaded = {}, {}
    for r in plan["runs"]:
        f = work / f"{r['name']}.npz"
        if f.exists():
            z = dict(np.load(f))
            loaded[r["name"]] = z
            preds.update({f"{r['name']}__{k}": v for k, v in z.items()})
    summary["ensembles"] = {}
    for ens, members in plan.get("ensembles", {}).items():
        if all(m in loaded for m in members):
            summary["ensembles"][ens] = {"runs": members, **ensemble_figures([loaded[m] for m in members])}
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "preds.npz", **preds)
    for name in plan.get("weights", []):
        if (work / f"{name}.pt").exists():
            shutil.copyfile(work / f"{name}.pt", out / f"{name}.pt")
    summary["plan"] = {"file": str(a.plan), **{k: v for k, v in plan.items() if k != "runs"},
                       "runs": {r["name"]: r["args"] for r in plan["runs"]}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(headline(summary), indent=1), flush=True)


def headline(summary: dict) -> dict:
    """Each run's and ensemble's main figures, one line each (for the log)."""
    out = {}
    for name, s in list(summary.items()) + list(summary.get("ensembles", {}).items()):
        if not isinstance(s, dict) or name in ("plan", "ensembles"):
            continue
        row = {}
        for k in ("val", "test", "heldout"):
            if k in s:
                row[k] = [s[k].get("mel_auc"), s[k].get("balanced_accuracy"), s[k].get("source_mean_mel_auc")]
        if "ph2" in s:
            row["ph2"] = s["ph2"]["mel_vs_nv_auc"]
        row.update({k: s[k] for k in ("steps", "epochs", "chosen_step", "returncode") if k in s})
        out[name] = json.dumps(row)
    return out


def main(argv=None) -> None:
    """Entry point."""
    a = parse_args(argv)
    if os.environ.get("LITE0_WEIGHTS") is None:
        for f in (".devdata/lite0.pth", ".devdata/lite0-body.pth"):  # the latter: what travels to a GPU machine
            if Path(f).exists():
                os.environ["LITE0_WEIGHTS"] = str(Path(f).resolve())
                break
    if a.mode == "child":
        from models.gpu_child import run_child

        run_child(a)
    elif a.mode == "predict":
        from models.gpu_predict import run_predict

        run_predict(a)
    else:
        {"all": run_all, "plan": run_plan}[a.mode](a)


if __name__ == "__main__":
    main()
