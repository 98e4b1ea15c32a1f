"""Training augmentation for the multi-source model (second version), as tensor ops on the training device.

Beside what :func:`models.train.augment` does for the first model (rotation through any angle, flips,
scale, translation, brightness, contrast, saturation, white balance, gamma, defocus blur), this one
handles on purpose how the sources differ from what the kiosk sees (and, as an option of a run,
mixes images: :func:`mix_batch`):

- **aspect ratio**: BCN20000, ISIC 2017 and MSK images were squashed from wider originals to a
  square; a random anisotropic scaling (aspect 3:4 to 4:3) makes the model indifferent to it instead
  of learning squashed lesions as a source (and so a prior);
- **scale**: the lesion fills a varying part of a kiosk frame: zoom is drawn log-uniformly in
  ``zoom`` (0.8-1.4 by default, wider than the first model's 0.8-1.25);
- **resolution mixing**: 12,500 of the images are 84 px (upsampled to the input size, hence soft)
  while the kiosk's are sharp; a share ``lowres_p`` of every batch, whatever its source, is brought
  down to a random 56-128 px and back, so that softness says nothing about the diagnosis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.net import MEAN, STD


_KERNELS: dict = {}


def _binomial5(dev) -> torch.Tensor:
    """The 5-tap binomial blur kernel on ``dev`` (made once per device: no copy per batch)."""
    if dev not in _KERNELS:
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        _KERNELS[dev] = (k / k.sum()).to(dev)
    return _KERNELS[dev]


def augment_v2(x: torch.Tensor, size: int, gen: torch.Generator | None = None,
               cpu_gen: torch.Generator | None = None, zoom=(0.8, 1.4),
               aspect: float = 4 / 3, lowres_p: float = 0.25, lowres_range=(56, 128)) -> torch.Tensor:
    """Random augmentation of a uint8 NCHW batch; returns normalised float NCHW of ``size`` x ``size``.

    ``gen`` seeds the per-image draws (a generator on the batch's device), ``cpu_gen`` the one
    resolution per batch for the images that get a resolution loss. Every draw is vectorised over
    the batch and nothing waits for the device (no boolean indexing), so a GPU stays busy.
    """
    n, dev = x.shape[0], x.device

    def u(*shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, device=dev, generator=gen) * (hi - lo) + lo

    x = x.float() / 255.0
    if lowres_p > 0:  # blended by mask, not indexed: no host-device synchronisation per batch
        r = int(torch.randint(lowres_range[0], lowres_range[1] + 1, (1,), generator=cpu_gen))
        if r < x.shape[-1]:
            small = F.interpolate(x, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
            low = (u(n) < lowres_p).view(n, 1, 1, 1)
            x = torch.where(low, F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False), x)
    ang = u(n) * 2 * math.pi
    z = torch.exp(u(n, lo=math.log(zoom[0]), hi=math.log(zoom[1])))  # > 1 zooms in
    a = torch.exp(u(n, lo=-math.log(aspect), hi=math.log(aspect)))  # anisotropic scale
    ax, ay = a.sqrt(), 1 / a.sqrt()
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    tx, ty = u(2, n, lo=-0.1, hi=0.1)
    cos, sin = torch.cos(ang) / z, torch.sin(ang) / z
    theta = torch.stack([torch.stack([cos * flip * ax, -sin * ax, tx], 1),
                         torch.stack([sin * flip * ay, cos * ay, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    b = u(n, 1, 1, 1, lo=0.75, hi=1.25)
    c = u(n, 1, 1, 1, lo=0.75, hi=1.3)
    s = u(n, 1, 1, 1, lo=0.7, hi=1.3)
    g = u(n, 3, 1, 1, lo=0.9, hi=1.1)
    gamma = u(n, 1, 1, 1, lo=0.8, hi=1.25)
    x = x * b * g
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    grey = x.mean(1, keepdim=True)
    x = (x - grey) * s + grey
    x = x.clamp(0, 1) ** gamma
    k = _binomial5(dev)
    xb = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
    xb = F.conv2d(F.pad(xb, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
    x = torch.where((u(n) < 0.15).view(n, 1, 1, 1), xb, x)  # occasional defocus blur
    return (x * 255.0 - MEAN) / STD


def mix_batch(x: torch.Tensor, gen: torch.Generator | None, rng, mixup: float = 0.0, cutmix: float = 0.0,
              p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """Mixup or CutMix of a normalised NCHW batch with a permutation of itself (one draw per batch).

    With probability ``p`` the batch is mixed: CutMix (Yun et al., 2019) where only ``cutmix`` > 0 or
    on a coin toss where both are, else mixup (Zhang et al., 2018); the mixing weight is drawn from
    Beta(alpha, alpha). Returns the batch, the permutation (None: not mixed) and ``lam``, the share of
    the loss that goes to each image's own label (for CutMix the share of its pixels that stayed).
    ``rng`` (numpy Generator) makes the host-side draws; ``gen`` the permutation on the batch's device.
    """
    if (mixup <= 0 and cutmix <= 0) or rng.random() >= p:
        return x, None, 1.0
    n = x.shape[0]
    perm = torch.randperm(n, device=x.device, generator=gen)
    use_cut = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cut else rng.beta(mixup, mixup))
    if not use_cut:
        return lam * x + (1 - lam) * x[perm], perm, lam
    h, w = x.shape[-2:]
    ch, cw = int(round(h * math.sqrt(1 - lam))), int(round(w * math.sqrt(1 - lam)))
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = max(0, cy - ch // 2), min(h, cy + ch - ch // 2)
    x0, x1 = max(0, cx - cw // 2), min(w, cx + cw - cw // 2)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    return out, perm, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
