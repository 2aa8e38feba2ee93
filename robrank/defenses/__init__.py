"""Adversarial-training defenses: the contract every defense plugin implements."""
from .base import Defense, NoDefense, TrainingProgress

__all__ = ["Defense", "NoDefense", "TrainingProgress"]
