"""Training: the config, the loop (single process or DDP) and run directories."""
from .config import TrainConfig, parse_triple, resolve_config
from .engine import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "parse_triple", "resolve_config", "train"]
