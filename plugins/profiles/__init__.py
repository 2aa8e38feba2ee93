"""The bundled swipe profiles: the reference's named attack lists and their stronger variants.

A third-party package adds its own profile the same way (a ``ProfileRecord`` whose factory
returns spec strings, and optionally a :class:`robrank.scoring.Score`); ``robrank swipe -p
NAME`` then runs it, and ``robrank report`` tabulates its score, with no change to the core.
The ERS of rob28/rob224 is such a score (:mod:`.ers`).
The corrected-semantics runs are not separate profiles: ``robrank swipe --semantics fixed``
runs the same list with the reference quirks fixed and records that in the results file.
"""
from __future__ import annotations

from robrank.plugin_api import ProfileRecord, hookimpl

from .autoattack import PROFILES as STRONGER
from .autoattack import WORST_CASE
from .reference import PROFILES


@hookimpl
def register_profiles(register):
    for name, (factory, image_size, score, summary, aliases) in PROFILES.items():
        register(ProfileRecord(name=name, factory=factory, summary=summary, aliases=aliases, image_size=image_size, score=score))
    for name, (factory, image_size, score, summary, aliases, variant_of) in STRONGER.items():
        register(ProfileRecord(name=name, factory=factory, summary=summary, aliases=aliases, image_size=image_size, score=score, variant_of=variant_of,
                               worst_case=name in WORST_CASE))
