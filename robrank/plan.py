"""The documented place of the run plan (docs/training.md): ``robrank.plan.plan_training`` & co.

The plan lives in the training package (:mod:`robrank.training.plan`), beside the config
and run directories it resolves, so the engine can plan a bare TrainConfig without an import
circle; this module keeps the documented import path.
"""
from .training.plan import (
    DEFAULT_SEMANTICS,
    RUN_SECTION,
    SWIPE_RUNTIME_KNOBS,
    TRAIN_RUNTIME_KNOBS,
    RunPlan,
    SwipePlan,
    build_plan,
    given_settings,
    merge_saved,
    plan_run,
    plan_training,
    saved_plan,
)

__all__ = [
    "RunPlan",
    "SwipePlan",
    "build_plan",
    "saved_plan",
    "plan_training",
    "plan_run",
    "merge_saved",
    "given_settings",
    "TRAIN_RUNTIME_KNOBS",
    "SWIPE_RUNTIME_KNOBS",
    "RUN_SECTION",
    "DEFAULT_SEMANTICS",
]
