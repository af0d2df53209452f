"""The LitData subclasses behind ``StreamingImageDataModule`` (imported when it opens shards: litdata is optional).

Module-level classes, so that loader workers started by ``spawn`` can pickle them.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from litdata import StreamingDataLoader, StreamingDataset
from torch import Tensor

from lit_early_phase.datamodules.vision.transforms import apply_keyed, load_rgb


class KeyedImageStream(StreamingDataset):
    """Shards of ``{"image", "label", "index"}`` -> ``(image tensor, label)``, augmentation keyed per sample.

    ``current_epoch`` is LitData's (1 for the first epoch, set by the loader before the workers start and by
    ``load_state_dict``): the key uses ``current_epoch - 1``, the epoch as Lightning counts it.
    """

    def __init__(
        self, input_dir: Any, *, image_transform: Any, keyed: bool, seed: int, in_chans: int, **kwargs: Any
    ) -> None:
        super().__init__(input_dir, seed=seed, **kwargs)
        self.image_transform, self.keyed, self.key_seed, self.in_chans = image_transform, keyed, seed, in_chans

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor]:
        item = super().__getitem__(index)
        image = load_rgb(io.BytesIO(item["image"]), in_chans=self.in_chans)
        if self.keyed:
            epoch = int(self.current_epoch) - 1
            x = apply_keyed(self.image_transform, image, seed=self.key_seed, epoch=epoch, index=int(item["index"]))
        else:
            x = self.image_transform(image)
        return x, torch.tensor(int(item["label"]))


class ResumingStreamLoader(StreamingDataLoader):
    """``StreamingDataLoader`` whose restored position applies to the first epoch after ``load_state_dict`` only.

    LitData keeps its ``restore`` flag until an iteration runs to ``StopIteration``; Lightning stops taking
    batches after ``len(loader)`` without exhausting the iterator, so the next epoch would replay the restored
    epoch (same order, same epoch number, hence the same augmentation) instead of starting a new one (the
    case of LitData issue #770). Here every iteration but the first after a load starts a fresh epoch.
    """

    _just_loaded = False

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        """LitData's ``load_state_dict``; the next iteration starts at the loaded position."""
        super().load_state_dict(obj)
        self._just_loaded = True

    def __iter__(self) -> Any:
        """A fresh epoch, or the loaded position if nothing was iterated since ``load_state_dict``."""
        if not self._just_loaded:
            self.restore = False
        self._just_loaded = False
        return super().__iter__()
