"""The bundled adversarial-training defenses: EST, ACT, SES and HM (see docs/defenses.md).

Each registers like a third-party plugin would. FGSM variants of the reference (``*df``,
``*pf``) are not separate defenses: pass ``pgditer=1``. Plain training (``none``) is the
registered no-op defense (``plain=True``): what a run trains with when it names no defense.
``suffixes`` are the reference's ``-C`` model suffixes (``rc2f2p`` = rc2f2 + ACT). The classes
are lazy ``"module:Class"`` references: registering imports none of them (nor torch), and
their options are read from their torch-free declarations (:mod:`.declarations`, which the
classes inherit), so ``robrank list defenses`` imports no torch either.
"""
from __future__ import annotations

from robrank.plugin_api import DefenseRecord, hookimpl

#: loss families with a triplet kernel that ACT and HM compose with (reference: p?triplet*, psnr*, pmargin*, pcontrast*)
FAMILIES: tuple[str, ...] = ("triplet", "snr", "margin", "contrastive")

_PGD = "eps/alpha/pgditer 28px: 77/255, 3/255, 32; 224px: 8/255, 1/255, 32 (pgditer=1 = FGSM)"


@hookimpl
def register_defenses(register):
    register(DefenseRecord(name="none", factory="robrank.plugin_api:NoDefense", summary="no defense: the loss on benign embeddings",
                           plain=True, declared="robrank.plugin_api:DefenseDeclaration"))
    register(
        DefenseRecord.of(
            f"{__name__}.est:EST",
            declared=f"{__name__}.declarations:ESTDeclaration",
            name="est",
            summary="Embedding-Shifted Triplet (ECCV'20): the loss on ES-adversarial batches",
            aliases=("EST",),
            suffixes={"d": {}, "df": {"pgditer": 1}},
            constraints=f"any loss and metric; trains BatchNorm; {_PGD}",
        )
    )
    register(
        DefenseRecord.of(
            f"{__name__}.act:ACT",
            declared=f"{__name__}.declarations:ACTDeclaration",
            name="act",
            summary="Anti-Collapse Triplet (RobRank): triplet kernel on p/n collapsed by PGD",
            aliases=("ACT", "pnp"),
            suffixes={"p": {}, "pf": {"pgditer": 1}},
            loss_families=FAMILIES,
            constraints=f"triplet/snr/margin/contrastive losses; BatchNorm frozen; {_PGD}",
        )
    )
    register(
        DefenseRecord.of(
            f"{__name__}.ses:SES",
            declared=f"{__name__}.declarations:SESDeclaration",
            name="ses",
            summary="Suppressing Embedding Shift (ECCV'20 supp.): benign loss + ES penalty",
            aliases=("SES",),
            suffixes={"e": {}},
            constraints=f"any loss and metric; BatchNorm frozen; {_PGD}",
        )
    )
    register(
        DefenseRecord.of(
            f"{__name__}.hm:HM",
            declared=f"{__name__}.declarations:HMDeclaration",
            name="hm",
            summary="Hardness Manipulation (CVPR'22): HM[S,g_LGA], --ics for &ICS",
            aliases=("HM",),
            loss_families=FAMILIES,
            metrics=("N",),
            constraints=(
                f"metric N; triplet/snr/margin/contrastive; {_PGD}"
            ),
        )
    )
