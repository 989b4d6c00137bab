"""Helpers for the fine-tuning (微调) book: data, offline stand-in, model surgery, training."""

__version__ = "0.1.0"
