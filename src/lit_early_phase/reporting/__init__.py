"""Reporting: the boundary figure, what goes to each kind of logger, and W&B runs."""
