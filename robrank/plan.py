"""The documented place of the run plan (docs/training.md): ``robrank.plan.plan_training`` & co.

The plan lives in the training package (:mod:`robrank.training.plan`), beside the config
and run directories it resolves, so the engine can plan a bare TrainConfig without an import
circle; this module keeps the documented import path (the names are listed there, once).
"""
from .training.plan import *  # noqa: F401,F403
from .training.plan import __all__  # noqa: F401
