"""Time-series classification data: aeon's UCR/UEA archive, in-memory series handling, ``UCRDataModule``."""
