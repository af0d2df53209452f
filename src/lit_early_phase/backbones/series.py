"""1-D convolutional backbones for time-series classification: FCN, ResNet1D and an InceptionTime-style net.

aeon's own deep classifiers (``FCNClassifier``, ``ResNetClassifier``, ``InceptionTimeClassifier``) are
Keras / TensorFlow models, which cannot sit inside a LightningModule or share its losses, mixing and metrics;
these are PyTorch re-implementations of the same published architectures (pure torch, no Lightning):

* **FCN** and **ResNet** after Wang, Yan and Oates, "Time series classification from scratch with deep neural
  networks: a strong baseline" (IJCNN 2017);
* **InceptionTime** after Ismail Fawaz et al., "InceptionTime: finding AlexNet for time series classification"
  (DMKD 2020), one network of the ensemble.

Every net maps ``(B, C, L)`` to ``(B, num_classes)`` logits and ends with global average pooling, so any
length ``L`` works (and it may change from batch to batch). Convolutions use "same" padding: the length is
kept through the net.

**Padding mask.** Unequal-length series are padded with zeros to the longest of the batch. The nets take the
validity mask either as ``forward(x, mask)`` (``(B, L)``, true/positive on real time points) or as one extra
*last input channel* (``(B, in_chans + 1, L)``, as :class:`~lit_early_phase.datamodules.UCRDataModule`
delivers padded batches): an input with exactly one channel more than ``in_chans`` is read that way.
Carrying the mask as a channel keeps the ``(x, y)`` batch format, so Mixup and CutMix mix it like the data: a
Mixup blend is valid where either partner is (mask > 0), a CutMix segment takes the partner's mask with its
values. Padded positions are zeroed after every block and left out of the average pooling; batch-norm
statistics still include them (a known, small bias for heavily padded batches).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lit_early_phase._validation import check_int


def masked_global_avg_pool(h: Tensor, mask: Tensor | None) -> Tensor:
    """Average ``(B, C, L)`` features over time, counting only the valid time points.

    Args:
        h: ``(B, C, L)`` features.
        mask: ``(B, L)`` bool mask of valid time points, or ``None`` (plain mean).

    Returns:
        ``(B, C)`` pooled features (zeros for a sample with no valid point).

    Example:
        >>> h = torch.tensor([[[1.0, 3.0, 100.0]]])
        >>> masked_global_avg_pool(h, torch.tensor([[True, True, False]]))
        tensor([[2.]])
    """
    if mask is None:
        return h.mean(dim=-1)
    m = mask.unsqueeze(1).to(h.dtype)
    return (h * m).sum(dim=-1) / m.sum(dim=-1).clamp_min(1.0)


def _check_positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    # by hand: a sequence rule, which _validation's scalar checks do not express
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"`{name}` must be a non-empty sequence of ints >= 1, got {values!r}.")
    return values


class SeriesBackbone(nn.Module):
    """Base class: input checks, the padding mask, masked pooling and the linear head.

    Subclasses build ``self.blocks`` (an ``nn.ModuleList`` whose modules take ``(h, mask)`` and return ``h``)
    and set ``self.num_features``; this class adds the head and the ``forward`` logic.

    Args:
        num_classes: number of output logits (>= 1).
        in_chans: data channels ``C`` (without the optional mask channel).

    Raises:
        ValueError: for a non-positive ``num_classes`` or ``in_chans``.
    """

    def __init__(self, *, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.in_chans = check_int("in_chans", in_chans, minimum=1)
        self.blocks = nn.ModuleList()
        self.num_features = 0
        self.head: nn.Module = nn.Identity()

    def _build_head(self) -> None:
        self.head = nn.Linear(self.num_features, self.num_classes)

    def split_mask(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Separate the data channels from an optional trailing mask channel and combine with ``mask``.

        Args:
            x: ``(B, in_chans, L)`` or ``(B, in_chans + 1, L)`` (last channel: validity mask).
            mask: optional ``(B, L)`` mask (bool, or numbers where > 0 means valid).

        Returns:
            ``(data, mask)``: ``data`` of shape ``(B, in_chans, L)``, ``mask`` a ``(B, L)`` bool tensor or
            ``None``.

        Raises:
            ValueError: for inputs that are not 3-D or have a channel count other than ``in_chans`` (+ 1).
        """
        if x.dim() != 3:
            raise ValueError(
                f"{type(self).__name__} expects series of shape (B, C, L), got {tuple(x.shape)}. "
                f"Univariate series need a channel dim: `x.unsqueeze(1)`."
            )
        channels = x.shape[1]
        if channels == self.in_chans + 1:
            channel_mask = x[:, -1] > 0
            x = x[:, :-1]
            mask = channel_mask if mask is None else channel_mask & (mask > 0)
        elif channels != self.in_chans:
            raise ValueError(
                f"{type(self).__name__} was built for in_chans={self.in_chans} (or {self.in_chans + 1} with "
                f"a trailing padding-mask channel), got {channels} channels in {tuple(x.shape)}. Set "
                f"`in_chans` to the data's channel count (UCRDataModule.in_chans)."
            )
        if mask is not None:
            if mask.shape != (x.shape[0], x.shape[2]):
                raise ValueError(
                    f"`mask` must have shape (B, L) = {(x.shape[0], x.shape[2])}, got {tuple(mask.shape)}."
                )
            mask = mask > 0
            x = x * mask.unsqueeze(1).to(x.dtype)
        return x, mask

    def forward_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Pooled features ``(B, num_features)``.

        Args:
            x: ``(B, in_chans[+1], L)`` series (see :meth:`split_mask`).
            mask: optional ``(B, L)`` validity mask.

        Returns:
            The globally average-pooled features of the last block.
        """
        h, mask = self.split_mask(x, mask)
        for block in self.blocks:
            h = block(h, mask)
        return masked_global_avg_pool(h, mask)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Logits ``(B, num_classes)``.

        Args:
            x: ``(B, in_chans, L)`` series, or ``(B, in_chans + 1, L)`` with a trailing padding-mask channel.
            mask: optional ``(B, L)`` validity mask (combined with a mask channel if both are given).

        Returns:
            The logits.
        """
        return self.head(self.forward_features(x, mask))


def _apply_mask(h: Tensor, mask: Tensor | None) -> Tensor:
    return h if mask is None else h * mask.unsqueeze(1).to(h.dtype)


class SameConv1d(nn.Conv1d):
    """Bias-free ``Conv1d`` with "same" zero padding done by hand (left ``(k-1)//2``, right ``k//2``).

    torch's own ``padding="same"`` gives the same result but warns (and copies the input anyway) for even
    widths such as the FCN's 8.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution width.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=False)
        self.same_padding = ((kernel_size - 1) // 2, kernel_size // 2)

    def forward(self, h: Tensor) -> Tensor:
        """Pad, then convolve: the output keeps the input length."""
        return super().forward(nn.functional.pad(h, self.same_padding))


class ConvBlock(nn.Module):
    """Conv1d (``"same"`` padding, no bias) -> BatchNorm1d -> optional ReLU, padded positions zeroed.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution width.
        activation: apply ReLU after the norm.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, activation: bool = True) -> None:
        super().__init__()
        self.conv = SameConv1d(in_channels, out_channels, kernel_size)
        self.norm = nn.BatchNorm1d(out_channels)
        self.activation = activation

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the block; ``mask`` is ``(B, L)`` bool or ``None``."""
        h = self.norm(self.conv(h))
        if self.activation:
            h = torch.relu(h)
        return _apply_mask(h, mask)


class FCN(SeriesBackbone):
    """Fully convolutional network (Wang et al. 2017): three conv blocks, global average pooling, linear head.

    Args:
        num_classes: number of classes.
        in_chans: data channels.
        widths: output channels of the three (or more) blocks; the paper uses ``(128, 256, 128)``.
        kernel_sizes: convolution widths, one per block; the paper uses ``(8, 5, 3)``.

    Raises:
        ValueError: for bad sizes or ``widths`` and ``kernel_sizes`` of different lengths.

    Example:
        >>> net = FCN(num_classes=3, in_chans=2, widths=(8, 16, 8))
        >>> net(torch.randn(4, 2, 50)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        widths: Sequence[int] = (128, 256, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
    ) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans)
        widths = _check_positive_ints("widths", widths)
        kernel_sizes = _check_positive_ints("kernel_sizes", kernel_sizes)
        if len(widths) != len(kernel_sizes):
            raise ValueError(f"`widths` {widths} and `kernel_sizes` {kernel_sizes} must have the same length.")
        channels = in_chans
        for width, k in zip(widths, kernel_sizes, strict=True):
            self.blocks.append(ConvBlock(channels, width, k))
            channels = width
        self.num_features = channels
        self._build_head()


class ResidualBlock(nn.Module):
    """Three conv blocks (the last without ReLU) plus a shortcut (1x1 conv + BN when the width changes), ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels of each conv.
        kernel_sizes: widths of the three convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        layers, channels = [], in_channels
        for i, k in enumerate(kernel_sizes):
            layers.append(ConvBlock(channels, out_channels, k, activation=i < len(kernel_sizes) - 1))
            channels = out_channels
        self.layers = nn.ModuleList(layers)
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.BatchNorm1d(out_channels)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels)
            )

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the block; ``mask`` is ``(B, L)`` bool or ``None``."""
        out = h
        for layer in self.layers:
            out = layer(out, mask)
        return _apply_mask(torch.relu(out + self.shortcut(h)), mask)


class ResNet1D(SeriesBackbone):
    """1-D ResNet (Wang et al. 2017): residual blocks of three convolutions, global average pooling, a head.

    Args:
        num_classes: number of classes.
        in_chans: data channels.
        widths: output channels of each residual block; the paper uses ``(64, 128, 128)``.
        kernel_sizes: the three convolution widths inside every block; the paper uses ``(8, 5, 3)``.

    Raises:
        ValueError: for bad sizes.

    Example:
        >>> net = ResNet1D(num_classes=2, in_chans=1, widths=(8, 16))
        >>> net(torch.randn(3, 1, 40)).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        widths: Sequence[int] = (64, 128, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
    ) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans)
        widths = _check_positive_ints("widths", widths)
        kernel_sizes = _check_positive_ints("kernel_sizes", kernel_sizes)
        channels = in_chans
        for width in widths:
            self.blocks.append(ResidualBlock(channels, width, kernel_sizes))
            channels = width
        self.num_features = channels
        self._build_head()


class InceptionModule(nn.Module):
    """Bottleneck 1x1 conv, three parallel convolutions and a max-pool branch, concatenated, BN, ReLU.

    Args:
        in_channels: input channels.
        nb_filters: channels of each of the four branches (output: ``4 * nb_filters``).
        kernel_sizes: widths of the three parallel convolutions.
        bottleneck: channels of the 1x1 bottleneck (skipped when the input has <= 1 channel or ``0``).
    """

    def __init__(self, in_channels: int, nb_filters: int, kernel_sizes: Sequence[int], bottleneck: int) -> None:
        super().__init__()
        use_bottleneck = bottleneck > 0 and in_channels > 1
        self.bottleneck: nn.Module = (
            nn.Conv1d(in_channels, bottleneck, 1, bias=False) if use_bottleneck else nn.Identity()
        )
        mid = bottleneck if use_bottleneck else in_channels
        self.convs = nn.ModuleList(SameConv1d(mid, nb_filters, k) for k in kernel_sizes)
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = nn.Conv1d(in_channels, nb_filters, 1, bias=False)
        self.norm = nn.BatchNorm1d(nb_filters * (len(kernel_sizes) + 1))

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the module; ``mask`` is ``(B, L)`` bool or ``None``."""
        z = self.bottleneck(h)
        branches = [conv(z) for conv in self.convs]
        if mask is None:
            pooled = self.pool(h)
        else:  # padding must not win a max: pool as if the series ended there (like the unpadded series)
            invalid = ~mask.unsqueeze(1)
            pooled = self.pool(h.masked_fill(invalid, float("-inf"))).masked_fill(invalid, 0.0)
        branches.append(self.pool_conv(pooled))
        return _apply_mask(torch.relu(self.norm(torch.cat(branches, dim=1))), mask)


class _InceptionResidual(nn.Module):
    """A run of inception modules with a shortcut (1x1 conv + BN) around it, ReLU after the sum."""

    def __init__(self, modules: list[InceptionModule], in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.modules_ = nn.ModuleList(modules)
        self.shortcut = nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels))

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        out = h
        for module in self.modules_:
            out = module(out, mask)
        return _apply_mask(torch.relu(out + self.shortcut(h)), mask)


class InceptionTime(SeriesBackbone):
    """One InceptionTime network (Ismail Fawaz et al. 2020): inception modules with residuals every 3 modules.

    The paper's network: ``depth=6``, ``nb_filters=32``, ``bottleneck=32``, kernel sizes 40/20/10 (as odd
    widths 39/19/9 here, so "same" padding is symmetric), a shortcut every 3 modules, global average pooling.
    The paper ensembles 5 such networks; ensembling is left to the user.

    Args:
        num_classes: number of classes.
        in_chans: data channels.
        nb_filters: channels per branch (each module outputs ``4 * nb_filters``).
        depth: number of inception modules.
        kernel_sizes: widths of the three parallel convolutions.
        bottleneck: bottleneck channels (0 = none).
        residual_every: modules per residual group (``0`` = no residual connections). ``depth`` must be a
            multiple of it.

    Raises:
        ValueError: for bad sizes or a ``depth`` that is not a multiple of ``residual_every``.

    Example:
        >>> net = InceptionTime(num_classes=4, in_chans=3, nb_filters=4, depth=3, kernel_sizes=(9, 5, 3))
        >>> net(torch.randn(2, 3, 30)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        nb_filters: int = 32,
        depth: int = 6,
        kernel_sizes: Sequence[int] = (39, 19, 9),
        bottleneck: int = 32,
        residual_every: int = 3,
    ) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans)
        check_int("nb_filters", nb_filters, minimum=1)
        check_int("depth", depth, minimum=1)
        check_int("bottleneck", bottleneck, minimum=0)
        check_int("residual_every", residual_every, minimum=0)
        kernel_sizes = _check_positive_ints("kernel_sizes", kernel_sizes)
        if residual_every and depth % residual_every:
            raise ValueError(
                f"`depth={depth}` must be a multiple of `residual_every={residual_every}` (or set residual_every=0)."
            )
        out = nb_filters * (len(kernel_sizes) + 1)
        group = residual_every or depth
        channels = in_chans
        for _ in range(depth // group):
            group_in = channels
            modules = []
            for _ in range(group):
                modules.append(InceptionModule(channels, nb_filters, kernel_sizes, bottleneck))
                channels = out
            if residual_every:
                self.blocks.append(_InceptionResidual(modules, group_in, out))
            else:
                self.blocks.extend(modules)
        self.num_features = out
        self._build_head()


SERIES_BACKBONES: dict[str, type[SeriesBackbone]] = {
    "fcn": FCN,
    "resnet1d": ResNet1D,
    "inception_time": InceptionTime,
}
"""Name -> class of the 1-D backbones: the names ``ImageClassifier(backbone=...)`` and the CLI accept."""


def create_series_backbone(name: str, *, num_classes: int, in_chans: int, **kwargs: Any) -> SeriesBackbone:
    """Build a 1-D backbone from :data:`SERIES_BACKBONES` by name.

    Args:
        name: ``"fcn"``, ``"resnet1d"`` or ``"inception_time"``.
        num_classes: number of classes (logits).
        in_chans: data channels of the series (without a padding-mask channel).
        **kwargs: architecture arguments of the class (``widths``, ``kernel_sizes``, ``nb_filters``,
            ``depth``...).

    Returns:
        The network, mapping ``(B, in_chans[+1], L)`` to ``(B, num_classes)``.

    Raises:
        ValueError: for an unknown name (with close matches) or bad architecture arguments.
        TypeError: for a keyword the architecture does not take.

    Example:
        >>> net = create_series_backbone("fcn", num_classes=2, in_chans=1, widths=(8, 8, 8))
        >>> net(torch.randn(5, 1, 24)).shape
        torch.Size([5, 2])
        >>> create_series_backbone("fnc", num_classes=2, in_chans=1)
        Traceback (most recent call last):
        ...
        ValueError: `name='fnc'` is not a series backbone. Close matches: ['fcn']. Available: ...
    """
    if name not in SERIES_BACKBONES:
        close = difflib.get_close_matches(str(name), list(SERIES_BACKBONES), n=3, cutoff=0.5)
        hint = f" Close matches: {close}." if close else ""
        raise ValueError(f"`name={name!r}` is not a series backbone.{hint} Available: {list(SERIES_BACKBONES)}.")
    cls = SERIES_BACKBONES[name]
    try:
        return cls(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as err:
        raise TypeError(f"Bad arguments {sorted(kwargs)} for series backbone {name!r} ({cls.__name__}): {err}") from err
