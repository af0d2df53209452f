"""PyTorch backbones that timm does not provide: 1-D networks for time-series classification."""

from lit_early_phase.backbones.series import (
    FCN,
    SERIES_BACKBONES,
    InceptionTime,
    ResNet1D,
    SeriesBackbone,
    create_series_backbone,
    masked_global_avg_pool,
)

__all__ = [
    "FCN",
    "SERIES_BACKBONES",
    "InceptionTime",
    "ResNet1D",
    "SeriesBackbone",
    "create_series_backbone",
    "masked_global_avg_pool",
]
