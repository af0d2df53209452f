"""Image classification data: in memory (the shared split/augmentation base and its two sources) and from files.

``images`` (the in-memory base), ``fashion_mnist``, ``mnist5k``; ``transforms`` (timm's pipelines for image files,
keyed by (seed, epoch, index), and ``load_rgb``), ``folder`` (``ImageFolderDataModule``).
"""
