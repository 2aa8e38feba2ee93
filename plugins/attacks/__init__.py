"""The bundled attacks of the reference: ranking (CA, QA, SPQA, ES, TMA, LTM, GTM, GTT) and classifier PGD.

Each registers exactly like a third-party attack would: an :class:`~robrank.records.AttackRecord`
derived from the attack class (:meth:`AttackRecord.of`), which declares everything else.
"""
from __future__ import annotations

from robrank.plugin_api import AttackRecord, hookimpl

from .candidate import CandidateAttack
from .classify import ClassifierPGD
from .es import EmbeddingShift
from .gtm import GreedyTop1Misrank
from .gtt import GreedyTop1Translocation
from .ltm import LearningToMisrank
from .query import QueryAttack
from .spqa import SPQueryAttack
from .tma import TargetedMismatch

ATTACKS = (
    (CandidateAttack, "candidate attack: raise (+) or lower (-) a perturbed candidate in W queries' rankings"),
    (QueryAttack, "query attack: raise (+) or lower (-) M candidates in a perturbed query's ranking"),
    (SPQueryAttack, "semantics-preserving query attack: QA that keeps the query's 5 nearest neighbours near the top"),
    (EmbeddingShift, "embedding shift: move each embedding as far from its clean self as possible (untargeted)"),
    (TargetedMismatch, "targeted mismatch (ICCV'19): pull the query onto a random gallery item (cosine)"),
    (LearningToMisrank, "learning-to-misrank: make every positive farther than every negative"),
    (GreedyTop1Misrank, "greedy top-1 misrank: pull the query onto the nearest item of another class"),
    (GreedyTop1Translocation, "greedy top-1 translocation: push the clean top-1 result out of the top"),
    (ClassifierPGD, "classifier PGD: raise the cross-entropy of the true label (targeted=1: pull to a random other class); clean and robust accuracy"),
)


@hookimpl
def register_attacks(register):
    for cls, summary in ATTACKS:
        register(AttackRecord.of(cls, summary))
