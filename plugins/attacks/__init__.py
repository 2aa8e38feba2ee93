"""The bundled attacks of the reference: ranking (CA, QA, SPQA, ES, TMA, LTM, GTM, GTT) and classifier PGD.

Each registers exactly like a third-party attack would: an :class:`~robrank.records.AttackRecord`
derived from the attack class (:meth:`AttackRecord.of`), which declares everything else. The
classes are named by lazy ``"module:Class"`` references, so registering imports no attack
(nor torch): ``robrank --help`` stays fast, and a class loads when its attack is first built.
Their fields live on torch-free declaration classes (:mod:`.declarations`) the classes
inherit, so ``robrank list attacks`` reads those alone and imports no torch either.
"""
from __future__ import annotations

from robrank.plugin_api import AttackRecord, hookimpl

#: name, the class (imported when the attack is first built), summary; its declaration is
#: ``declarations:<name>Declaration``
ATTACKS = (
    ("CA", "candidate:CandidateAttack", "candidate attack: raise (+) or lower (-) a perturbed candidate in W queries' rankings"),
    ("QA", "query:QueryAttack", "query attack: raise (+) or lower (-) M candidates in a perturbed query's ranking"),
    ("SPQA", "spqa:SPQueryAttack", "semantics-preserving query attack: QA that keeps the query's 5 nearest neighbours near the top"),
    ("ES", "es:EmbeddingShift", "embedding shift: move each embedding as far from its clean self as possible (untargeted)"),
    ("TMA", "tma:TargetedMismatch", "targeted mismatch (ICCV'19): pull the query onto a random gallery item (cosine)"),
    ("LTM", "ltm:LearningToMisrank", "learning-to-misrank: make every positive farther than every negative"),
    ("GTM", "gtm:GreedyTop1Misrank", "greedy top-1 misrank: pull the query onto the nearest item of another class"),
    ("GTT", "gtt:GreedyTop1Translocation", "greedy top-1 translocation: push the clean top-1 result out of the top"),
    ("PGD", "classify:ClassifierPGD", "classifier PGD: raise the cross-entropy of the true label (targeted=1: pull to a random other class); clean and robust accuracy"),
)


@hookimpl
def register_attacks(register):
    for name, where, summary in ATTACKS:
        register(AttackRecord.of(f"{__name__}.{where}", summary, name=name, declared=f"{__name__}.declarations:{name}Declaration"))
