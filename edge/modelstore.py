"""The kiosk's model folder: ``model_dir`` as a symlink swapped atomically, and a new model's self-test."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from wire.durable import fsync_dir, write_new

from .bundle import UpdateError

log = logging.getLogger("edge.update")

MODEL_FILES = ("manifest.json", "model.tflite")
#: Model versions kept besides the serving one (for rollback by hand).
KEEP_VERSIONS = 3


class ModelStore:
    """``model_dir`` as a symlink into ``<model_dir>.versions/``: install, swap atomically, roll back."""

    def __init__(self, model_dir: Path | str):
        self.model_dir = Path(model_dir)
        self.versions = self.model_dir.parent / f"{self.model_dir.name}.versions"

    @property
    def managed(self) -> bool:
        """True when ``model_dir`` is a symlink this class can swap."""
        return self.model_dir.is_symlink()

    def current(self) -> Path | None:
        """The version folder being served (None when ``model_dir`` is not managed)."""
        return self.model_dir.resolve() if self.managed else None

    def seed(self, seed_dir: Path | str) -> bool:
        """First start: copy the shipped model (``seed_dir``) in and point ``model_dir`` at it.

        Does nothing (False) when ``model_dir`` already exists.
        """
        if self.model_dir.exists() or self.model_dir.is_symlink():
            return False
        files = {name: (Path(seed_dir) / name).read_bytes() for name in MODEL_FILES}
        target = self.install("seed", files)
        self.swap(target)
        log.info("model folder seeded from %s", seed_dir)
        return True

    def install(self, version: str, files: dict[str, bytes]) -> Path:
        """Write ``files`` to a staging folder (fsynced) and rename it to a new version folder."""
        self.versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.versions))
        for name, blob in files.items():
            write_new(staging / name, blob)
        fsync_dir(staging)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", version)[:60]
        target = self.versions / f"{safe}-{uuid.uuid4().hex[:8]}"
        os.rename(staging, target)
        fsync_dir(self.versions)
        return target

    def swap(self, target: Path) -> Path | None:
        """Point ``model_dir`` at ``target`` atomically; returns the previous target (None at seeding)."""
        previous = self.current()
        link_tmp = self.model_dir.parent / f".{self.model_dir.name}.swap-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(target, self.model_dir.parent), link_tmp)
        os.replace(link_tmp, self.model_dir)
        fsync_dir(self.model_dir.parent)
        return previous

    def prune(self, keep: int = KEEP_VERSIONS) -> None:
        """Remove old version folders and leftover staging folders, keeping the serving one and ``keep`` more."""
        if not self.versions.exists():
            return
        current = self.current()
        for p in self.versions.glob(".staging-*"):
            shutil.rmtree(p, ignore_errors=True)
        others = sorted((p for p in self.versions.iterdir() if p.is_dir() and p != current and not p.name.startswith(".")),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for p in others[keep:]:
            shutil.rmtree(p, ignore_errors=True)


def self_test(model_dir: Path, expected_sha256: str, threads: int = 1):
    """Load the model at ``model_dir`` and check it works; returns the Classifier. UpdateError if not.

    Checks: it loads (the Classifier verifies the manifest's SHA-256 of the file), the
    file is the one that was signed, a generated lesion image gives finite
    probabilities that sum to 1, and a classification comes out.
    """
    import numpy as np

    from .camera.synth import lesion_image
    from .classifier import Classifier

    try:
        clf = Classifier(model_dir, threads=threads)
    except Exception as exc:
        raise UpdateError(f"self-test: the new model does not load: {exc}") from None
    if clf.manifest.sha256 != expected_sha256:
        raise UpdateError("self-test: the model's manifest SHA-256 is not the signed file's")
    img = lesion_image(320, 240, seed=7)
    try:
        p = clf.probabilities(img)
    except Exception as exc:
        raise UpdateError(f"self-test: the new model failed on a test image: {type(exc).__name__}") from None
    if p.shape != (len(clf.manifest.labels),) or not np.all(np.isfinite(p)) or np.any(p < -1e-6) \
            or abs(float(p.sum()) - 1.0) > 1e-3:
        raise UpdateError(f"self-test: outputs are not a probability distribution (sum {float(p.sum()):.4f})")
    try:
        clf.classify(img)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UpdateError(f"self-test: classification failed: {type(exc).__name__}: {first}") from None
    return clf
