"""Image classification data held in memory: the shared split/augmentation base and its two sources."""
