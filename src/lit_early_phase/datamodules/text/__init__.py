"""Instruction data for causal language models: record readers, chat rendering, padding, the DataModule."""
