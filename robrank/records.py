"""Typed registration records, one per component kind.

A plugin describes each component it provides with one of these records and hands it to the
``register`` callback of the matching hook. The host, not the plugin, owns validation,
provenance and name resolution: a record only says *what* the component is. Keeping the
metadata here (instead of as attributes scattered over classes) lets ``robrank list`` show
everything without instantiating a single model, and lets the CLI check a combination
(say, a defense with a loss it cannot use) before any work starts.

Every record has ``name``, ``factory`` and a one-line ``summary``; ``aliases`` are extra
names that resolve to the same component (e.g. the reference code's loss names). A
``factory`` given as ``"package.module:attr"`` (:class:`Ref`) is imported on first use, so a
plugin registers without importing its implementation (or torch). An attack or defense may
also name its torch-free declaration class (``declared="package.fields:Class"``): listing it
then reads the declaration, and the implementation loads when the component is built.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import PluginError
from .params import Param
from .scoring import Score
from .summaries import MetricDisplay

#: How users spell "no pretrained weights" (``--pretrained none``); not a component name.
NO_WEIGHTS = "none"

#: The image-size families of the reference code; they decide defaults and swipe profiles.
SIZE_28 = 28
SIZE_224 = 224

#: what a model or dataset is for: ranking (embeddings) or classification (logits)
TASK_RETRIEVAL = "retrieval"
TASK_CLASSIFICATION = "classification"
TASKS: tuple[str, ...] = (TASK_RETRIEVAL, TASK_CLASSIFICATION)


def size_family(image_size: int | None) -> int:
    """The reference's size family of an image size: 28 for small images (up to 64 px), else 224.

    Defaults (epochs, learning rate, adversarial budgets, swipe profile, quickstart backbone)
    are chosen per family, so every layer asks this one function.
    """
    if image_size is None:
        return SIZE_28
    return SIZE_28 if int(image_size) <= 64 else SIZE_224


class Ref(str):
    """A lazy reference ``"package.module:attr"`` to a component's implementation.

    A record's ``factory`` may be given as such a string: registering the component then
    imports nothing, and the module is imported when the component is first used (calling
    the reference calls the attribute). That keeps ``robrank --help`` and ``robrank list``
    free of torch: a plugin's entry-point module only describes its components, and its
    implementation modules load when a model is built. ``attr`` may be dotted
    (``module:Class.build``).
    """

    def __new__(cls, text: str) -> Ref:
        module, sep, attr = str(text).partition(":")
        if not sep or not module.strip() or not attr.strip():
            raise ValueError(f"a lazy factory is 'package.module:attr', got {text!r}")
        return super().__new__(cls, text)

    def load(self) -> Any:
        """The referenced object (its module imported on first use; Python caches it after)."""
        module, _, attr = self.partition(":")
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


class Implementation(Ref):
    """A lazy reference to the class that implements a declared component, checked when it loads.

    The record's metadata was read from the declaration (a torch-free class); this reference
    imports the implementation when the component is built and refuses it, in one line
    naming both classes, unless it is a subclass of the declaration that changes none of the
    declared facts (``facts``: class attributes, or ``parameters``, whose result is compared).
    """

    def __new__(cls, text: str, declaration: type, what: str, facts: tuple[str, ...]) -> Implementation:
        ref = super().__new__(cls, text)
        ref.declaration, ref.what, ref.facts = declaration, what, facts
        return ref

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickles with its declaration
        return (str(self), self.declaration, self.what, self.facts)

    def load(self) -> Any:
        target = super().load()
        check_implementation(target, self.declaration, self.what, self.facts, where=str(self))
        return target


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _fact(cls: type, name: str) -> Any:
    value = getattr(cls, name, None)
    if name == "parameters" and callable(value):
        return tuple(value())
    return getattr(value, "__func__", value)  # a classmethod: the function, so an override shows


def check_implementation(target: Any, declaration: type, what: str, facts: tuple[str, ...], *, where: str = "") -> None:
    """A one-line :class:`PluginError` unless ``target`` extends ``declaration`` and keeps its ``facts``.

    What a listing showed (read from the declaration) is then what the built component
    does: the implementation inherits every declared fact instead of repeating it.
    """
    where = where or (_qualified(target) if isinstance(target, type) else repr(target))
    if not (isinstance(target, type) and issubclass(target, declaration)):
        raise PluginError(
            f"{what}: its implementation {where} is not a subclass of its declaration {_qualified(declaration)}; "
            "derive the implementation from the declaration so each declared fact is written once"
        )
    changed = [name for name in facts if _fact(target, name) != _fact(declaration, name)]
    if changed:
        raise PluginError(
            f"{what}: its implementation {where} changes {', '.join(changed)} of its declaration "
            f"{_qualified(declaration)}; declare them on the declaration only (robrank list reads them from it)"
        )


#: what an attack's and a defense's declaration fixes, checked against the implementation
ATTACK_FACTS: tuple[str, ...] = (
    "name", "parameters", "reports", "display", "bounds", "legacy_fractions", "task", "perturbs", "check_values",
)
DEFENSE_FACTS: tuple[str, ...] = ("parameters", "family_defaults")


def implementation(factory: Any) -> Any:
    """``factory`` itself, or the object a lazy :class:`Ref` names (imported now)."""
    return factory.load() if isinstance(factory, Ref) else factory


@dataclass(frozen=True)
class Record:
    """Fields shared by every kind."""

    name: str
    factory: Callable[..., Any]
    summary: str
    aliases: tuple[str, ...] = ()

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if isinstance(self.factory, str) and not isinstance(self.factory, Ref):
            object.__setattr__(self, "factory", Ref(self.factory))

    def resolved(self) -> Record:
        """This record with what it takes from its implementation filled in (itself if nothing).

        The registry calls it when a component is first looked up; a record whose metadata is
        all given (or whose factory is not lazy) is returned as it is, without importing anything.
        """
        return self

    def details(self) -> dict[str, Any]:
        """Kind-specific metadata, for ``robrank list --json`` (JSON-serialisable).

        Derived from the dataclass fields, so a field added to a record is listed without a
        second edit; the identity fields and callables are left out.
        """
        shown: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name in _IDENTITY_FIELDS:
                continue
            value = getattr(self, item.name)
            if callable(value):
                continue
            shown[item.name] = _plain(value)
        return shown


#: the fields every record has, and where an attack's or defense's facts are read from
#: (``declared``: not a fact itself); details() lists the rest
_IDENTITY_FIELDS = frozenset({"name", "factory", "summary", "aliases", "declared"})


def _plain(value: Any) -> Any:
    """Tuples and mappings as JSON's lists and objects."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class DatasetRecord(Record):
    """A dataset. ``factory(root: Path | None) -> robrank.data.DatasetSource``.

    ``root`` is the user's ``--data-root`` (or ``$ROBRANK_DATA``); the source decides where
    else to look. ``num_test_classes`` is the k of NMI's k-means, or 0 for a dataset whose
    classes come from the user's files (counted from the test split when it is loaded, see
    :meth:`test_classes`); ``profile`` is the swipe profile that fits the image size (empty:
    the one registered scored profile whose ``image_size`` family fits, see
    :func:`robrank.swipe.runner.profile_for_dataset`).

    ``kinds`` are the batch layouts its splits may be fed as; a loss whose layout is not
    among them is refused before training. ``default_backbone`` and ``default_loss`` are
    what ``robrank run`` trains when the user names none (the published tables' choice for
    this dataset), and the one dataset with ``quickstart=True`` is what ``robrank run``
    with no options uses: the core names no dataset, backbone or loss itself.
    ``attack_defaults`` maps an attack name to spec-field defaults that depend on the data
    (e.g. a rate the reference tuned per dataset); a field given in the spec wins, and an
    attack missing here uses its own declared default.
    """

    image_size: int = SIZE_28
    channels: int = 1
    num_test_classes: int = 10
    profile: str = ""
    kinds: tuple[str, ...] = ("classification", "SPC-2", "triplet")
    task: str = "retrieval"  # or "classification" (e.g. cifar10: no zero-shot split)
    default_backbone: str = ""
    default_loss: str = ""
    quickstart: bool = False
    attack_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    kind: ClassVar[str] = "datasets"

    def test_classes(self, test_set: Any) -> int:
        """k of NMI's k-means for this test split: ``num_test_classes``, or its class count when that is 0."""
        return self.num_test_classes or int(test_set.num_classes)


@dataclass(frozen=True)
class BackboneRecord(Record):
    """An embedding network. ``factory(embedding_dim, pretrained, weights) -> nn.Module``.

    The module maps pixels in [0, 1] (N x channels x input_size x input_size) to raw
    embeddings and does its own input normalisation, so attacks always work in pixel space.
    ``pretrained`` is ``"imagenet"`` or ``None``; ``weights`` an optional local file.
    ``has_batchnorm`` says the network has BatchNorm layers: only then is ``--freeze-bn``
    meaningful (and on by default for 224x224); the test suite checks it against the module.
    A ``task="classification"`` backbone outputs logits (``embedding_dim`` = classes) and
    trains with a classification loss. ``train_defaults`` are the backbone's own training
    recipe (any of epochs, batch_size, lr, weight_decay, optimizer, momentum, milestones,
    lr_gamma), used instead of the image-size family's defaults where given.
    """

    input_size: int = SIZE_28
    channels: int = 1
    default_embedding_dim: int = 512
    pretrained: tuple[str, ...] = ()  # available pretrained weight sets, e.g. ("imagenet",)
    has_batchnorm: bool = False
    task: str = TASK_RETRIEVAL  # TASK_CLASSIFICATION for classifier heads
    train_defaults: dict[str, Any] = field(default_factory=dict, hash=False)

    kind: ClassVar[str] = "backbones"


#: Batch prefix of the reference names: ``p`` = SPC-2 pair batch.
SPC2_PREFIX = "p"
#: Miner letters of the reference grammar ('' = spc2-random, m semihard, s softhard,
#: d distance-weighted, D distance-weighted with p_switch 0.15, h hardest).
REFERENCE_MINER_LETTERS: tuple[str, ...] = ("", "m", "s", "d", "D", "h")


def reference_aliases(
    tokens: Iterable[str],
    metrics: Iterable[str],
    uses_miner: bool,
    letters: Iterable[str] = REFERENCE_MINER_LETTERS,
) -> tuple[str, ...]:
    """Every reference name a loss family answers to, e.g. ``ptripletN``, ``pDtripletN``."""
    letters = tuple(letters) if uses_miner else ("",)
    names: list[str] = []
    for token in tokens:
        for letter in letters:
            for metric in metrics:
                name = f"{SPC2_PREFIX}{letter}{token}{metric}"
                if name not in names:
                    names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class LossRecord(Record):
    """A deep-metric-learning loss family. ``factory(metric, miner=None, **params) -> nn.Module``.

    ``metrics`` lists the metric variants it supports (C = cosine distance, E = Euclidean,
    N = Euclidean on the unit sphere); ``batch`` is the batch layout it consumes; ``family``
    groups losses for defense compatibility (``triplet``, ``contrastive``, ...);
    ``uses_miner`` says whether a miner letter may prefix its reference name;
    ``has_raw`` says the module exposes ``raw(a, p, n)``, which defenses need.
    ``default_miner`` names the miner used when none is chosen; empty means the miner without
    a reference letter (the reference's spc2-random).
    """

    metrics: tuple[str, ...] = ("C", "E", "N")
    batch: str = "SPC-2"
    family: str = ""
    uses_miner: bool = False
    default_miner: str = ""  # empty: the registered miner without a letter
    has_raw: bool = False

    kind: ClassVar[str] = "losses"

    def details(self) -> dict[str, Any]:
        return {**super().details(), "family": self.family or self.name}


@dataclass(frozen=True)
class MinerRecord(Record):
    """A triplet miner for SPC-2 batches. ``factory(metric, margin) -> Miner``.

    ``letter`` is the one-letter prefix of the reference loss names (``m`` = semihard, ...);
    empty for the default random miner.
    """

    letter: str = ""

    kind: ClassVar[str] = "miners"


@dataclass(frozen=True)
class AttackRecord(Record):
    """A ranking attack. ``factory(**spec_params, semantics=, random_start=) -> robrank.attacks.Attack``.

    Build it with :meth:`of` from the attack class, which is the single source of the name,
    the typed spec fields (``params``, and ``check`` for constraints across fields), the
    summary keys it reports and how a report shows them (``display``); the spec grammar
    validates every field against them once.
    """

    params: tuple[Param, ...] = ()
    reports: tuple[str, ...] = ()
    display: tuple[MetricDisplay, ...] = ()
    #: the range of each summary key's average (a key not listed only has to be finite)
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: keys stored as fractions in results files before schema version 3 (``Attack.legacy_fractions``)
    legacy_fractions: tuple[str, ...] = ()
    #: ``check(values)`` for constraints across fields (raises ``robrank.params.ParamError``)
    check: Callable[[Mapping[str, Any]], None] | None = None
    task: str = TASK_RETRIEVAL  # the kind of model it attacks (TASK_CLASSIFICATION: a classifier's logits)

    kind: ClassVar[str] = "attacks"

    @classmethod
    def of(
        cls, attack: Any, summary: str, aliases: tuple[str, ...] = (), *, name: str = "", declared: str = ""
    ) -> AttackRecord:
        """The record of an :class:`~robrank.attacks.Attack` subclass (its class attributes, nothing repeated).

        ``attack`` may be a lazy ``"package.module:Class"`` reference (then give ``name``, which
        must be the class's): registering imports nothing, and the fields, reports and display
        are read from the class when the attack is first looked up. ``declared`` names the
        class's torch-free declaration (an ``AttackDeclaration`` subclass, ``"package.module:Class"``):
        the fields are then read from it, so listing the attack imports no torch, and the
        class itself loads (checked to extend the declaration) when the attack is built.
        """
        if isinstance(attack, str):
            if not name:
                raise ValueError(f"AttackRecord.of({attack!r}) needs name=...: the name is registered before the class is imported")
            return _DeferredAttackRecord(
                name=name, factory=attack, summary=summary, aliases=tuple(aliases), declared=Ref(declared) if declared else None
            )
        if declared:
            check_implementation(attack, Ref(declared).load(), f"attack {attack.name!r}", ATTACK_FACTS)
        if name and name != attack.name:
            raise ValueError(f"AttackRecord.of({attack.__name__}, name={name!r}): the class is named {attack.name!r}")
        return cls(
            name=attack.name,
            factory=attack,
            summary=summary,
            aliases=tuple(aliases),
            params=tuple(attack.parameters()),
            reports=tuple(attack.reports),
            display=tuple(attack.display),
            bounds=dict(getattr(attack, "bounds", {})),
            legacy_fractions=tuple(getattr(attack, "legacy_fractions", ())),
            check=getattr(attack, "check_values", None),
            task=getattr(attack, "task", TASK_RETRIEVAL),
        )

    @property
    def required(self) -> tuple[str, ...]:
        """The spec fields that must be given (no default)."""
        return tuple(p.name for p in self.params if p.required)

    @property
    def signed(self) -> bool:
        """Whether the attack has a direction ``pm=+``/``pm=-`` (its label then ends in + or -)."""
        return any(p.name == "pm" for p in self.params)

    def details(self) -> dict[str, Any]:
        return {
            "params": [p.details() for p in self.params],
            "required": list(self.required),
            "signed": self.signed,
            "reports": list(self.reports),
            "display": [d.details() for d in self.display],
            "bounds": {key: [None if math.isinf(b) else b for b in bound] for key, bound in self.bounds.items()},  # null: unbounded
            "task": self.task,
        }


@dataclass(frozen=True)
class _DeferredAttackRecord(AttackRecord):
    """An attack registered by a lazy reference to its class: everything but the name waits for the class.

    With a ``declared`` class, resolving imports that declaration only; the implementation
    stays a lazy :class:`Implementation`, imported and checked when the attack is built.
    """

    declared: Ref | None = None

    def resolved(self) -> AttackRecord:
        source = self.declared or self.factory
        attack = implementation(source)
        if getattr(attack, "name", None) != self.name:
            raise ValueError(f"{source} is named {getattr(attack, 'name', None)!r}, but it was registered as {self.name!r}")
        record = AttackRecord.of(attack, self.summary, self.aliases)
        if self.declared is None:
            return record
        return dataclasses.replace(record, factory=Implementation(self.factory, attack, f"attack {self.name!r}", ATTACK_FACTS))


@dataclass(frozen=True)
class DefenseRecord(Record):
    """An adversarial-training defense. ``factory(**options) -> robrank.defenses.Defense``.

    Build it with :meth:`of` from the defense class, which declares its options (``params``,
    :class:`Param` objects: type, range, default, help) and the defaults that depend on the
    image-size family (``family_defaults``); a record whose factory is a Defense class takes
    them from it too. ``robrank list defenses`` shows the options, an option the defense does
    not declare is refused before training, and the training config records the family
    defaults (and only those the defense declares) in ``defense_options``.

    ``loss_families`` restricts which loss families it composes with (empty = any);
    ``metrics`` restricts the metric (empty = any); ``constraints`` is a human-readable
    line shown by ``robrank list defenses``.

    ``suffixes`` maps the reference's model-name suffixes (``-C dataset:<backbone><suffix>:loss``)
    to the options they imply, e.g. ``{"p": {}, "pf": {"pgditer": 1}}``; a third-party defense
    gets its own ``-C`` suffix by declaring one. ``plain`` marks plain metric learning (no
    inner attack): it is what a run trains with when no defense is named, it takes no PGD
    budget, and run directory names leave it out.

    ``declared`` names the factory's torch-free declaration (a ``DefenseDeclaration``
    subclass, ``"package.module:Class"``): ``params`` and ``family_defaults`` are then read
    from it, so listing the defense imports no torch, and the factory loads (checked to
    extend the declaration) when the defense is built.
    """

    loss_families: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    constraints: str = ""
    suffixes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    plain: bool = False
    params: tuple[Param, ...] = ()
    family_defaults: Mapping[int, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    declared: Ref | None = None

    kind: ClassVar[str] = "defenses"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.declared, str) and not isinstance(self.declared, Ref):
            object.__setattr__(self, "declared", Ref(self.declared))
        factory = self.factory
        if not self.params and isinstance(factory, type) and callable(getattr(factory, "parameters", None)):
            object.__setattr__(self, "params", tuple(factory.parameters()))
        if not self.family_defaults and isinstance(factory, type):
            object.__setattr__(self, "family_defaults", dict(getattr(factory, "family_defaults", {}) or {}))

    @classmethod
    def of(cls, defense: Any, summary: str, aliases: tuple[str, ...] = (), *, name: str = "", **fields: Any) -> DefenseRecord:
        """The record of a :class:`~robrank.defenses.Defense` subclass: its name and options come from the class.

        ``defense`` may be a lazy ``"package.module:Class"`` reference (then give ``name``): the
        options are read from the class when the defense is first looked up, or from its
        ``declared`` declaration class (imported instead, without torch) when one is named.
        """
        if isinstance(defense, str):
            if not name:
                raise ValueError(f"DefenseRecord.of({defense!r}) needs name=...: the name is registered before the class is imported")
            return cls(name=name, factory=defense, summary=summary, aliases=tuple(aliases), **fields)
        return cls(name=name or defense.name, factory=defense, summary=summary, aliases=tuple(aliases), **fields)

    def resolved(self) -> DefenseRecord:
        if self.declared is not None:
            return self._from_declaration()
        if not isinstance(self.factory, Ref):
            return self
        target = self.factory.load()
        if not isinstance(target, type):
            return self
        return dataclasses.replace(self, factory=target)  # __post_init__ reads params and family_defaults from it

    def _from_declaration(self) -> DefenseRecord:
        """Options and family defaults read from the declaration; the factory checked now if loaded, else when built."""
        if isinstance(self.factory, Implementation):
            return self  # resolved already
        declaration = self.declared.load()
        what = f"defense {self.name!r}"
        if not isinstance(self.factory, Ref):  # a class given directly: __post_init__ read its options
            check_implementation(self.factory, declaration, what, DEFENSE_FACTS)
            return self
        return dataclasses.replace(
            self,
            factory=Implementation(self.factory, declaration, what, DEFENSE_FACTS),
            params=self.params or tuple(declaration.parameters()),
            family_defaults=self.family_defaults or dict(declaration.family_defaults or {}),
        )

    def defaults_for(self, image_size: int | None) -> dict[str, Any]:
        """The declared options whose default depends on the image size, at their value for ``image_size``."""
        return dict(self.family_defaults.get(size_family(image_size), {}))

    def details(self) -> dict[str, Any]:
        shown = super().details()
        shown["params"] = [p.details() for p in self.params]
        return shown


@dataclass(frozen=True)
class ProfileRecord(Record):
    """A swipe profile. ``factory() -> list[str]`` of attack specs, run in order.

    ``image_size`` is the size family the profile's ε fits (None = any). ``score`` is the
    profile's robustness score (:class:`robrank.scoring.Score`: which attack fills which
    column, how each is rescaled), or None for a profile that only lists attacks; a swipe of
    a scored profile records it, and ``robrank report`` tabulates it. ``variant_of`` names
    the profile this one is a variant of (the same columns under a stronger search or another
    threat model); a variant is never a dataset's default profile. ``worst_case`` marks the
    variant that is its base profile's worst-case evaluation: ``robrank bench`` runs the base
    profile (comparable with published numbers) and this one (the number to rank by).
    """

    image_size: int | None = None
    score: Score | None = None
    variant_of: str | None = None
    worst_case: bool = False

    kind: ClassVar[str] = "profiles"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 1):
            raise ValueError(f"profile {self.name!r}: image_size must be a positive int or None, got {self.image_size!r}")

    @property
    def family(self) -> int | None:
        """The size family (:func:`size_family`) the profile fits, or None for any size."""
        return None if self.image_size is None else size_family(self.image_size)

    def fits(self, image_size: int | None) -> bool:
        """Whether the profile's budgets were chosen for images of this size (its family)."""
        return self.image_size is None or image_size is None or size_family(image_size) == self.family

    def details(self) -> dict[str, Any]:
        out = {"image_size": self.image_size, "score": None if self.score is None else self.score.details()}
        if self.variant_of is not None:
            out["variant_of"] = self.variant_of
        if self.worst_case:
            out["worst_case"] = True
        return out


@dataclass(frozen=True)
class ExecutorRecord(Record):
    """A sweep executor: where the cells of ``robrank sweep`` run.

    ``factory(settings: robrank.sweep.ExecutorSettings) -> robrank.sweep.Executor``;
    ``options`` are the ``-X KEY=VALUE`` keys it accepts beyond the common settings;
    ``default`` marks the executor used when ``--executor`` is not given.
    """

    options: tuple[str, ...] = ()
    default: bool = False

    kind: ClassVar[str] = "executors"

    def details(self) -> dict[str, Any]:
        return {"options": list(self.options), "default": self.default}


@dataclass(frozen=True)
class ModelRecord(Record):
    """A trained model users load as ``--model zoo:NAME``: an architecture plus weights with a checksum.

    ``factory`` is the builder: a callable (or a lazy ``"package.module:callable"`` string,
    imported only when the model is loaded) returning the bare ``nn.Module``, which the
    weights are then loaded into. ``weights`` is where the state_dict lives: a URL
    (``https://``, ``file://``; fetched once into the cache with torch's own download
    helper) or a local path; ``sha256`` is the file's checksum, checked before anything is
    loaded. ``dataset`` and ``metric`` are what the model was trained on and ranks with
    (the defaults of ``--dataset`` and ``--metric``); ``normalize`` and ``gray_to_rgb`` are
    what ``--normalize`` and ``--gray-to-rgb`` would say for it; ``weights_key`` selects a
    nested state_dict as ``--weights-key`` does. ``paper`` and ``licence`` are provenance:
    ``robrank list models`` shows them, and results record them beside the weights' checksum.
    """

    dataset: str = ""
    metric: str = ""
    weights: str = ""
    sha256: str = ""
    normalize: str = "none"
    gray_to_rgb: bool = False
    weights_key: str | None = None
    paper: str = ""
    licence: str = ""

    kind: ClassVar[str] = "models"

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = [what for what, bad in (
            ("dataset", not self.dataset),
            ("metric (C, E or N)", self.metric not in ("C", "E", "N")),
            ("weights (a URL or a path)", not self.weights),
            ("sha256 (64 hex digits)", not _is_sha256(self.sha256)),
            ("factory (a callable or 'module:callable')", not (callable(self.factory) or (isinstance(self.factory, str) and ":" in self.factory))),
        ) if bad]
        if problems:
            raise ValueError(f"model {self.name!r}: needs {', '.join(problems)}")

    def details(self) -> dict[str, Any]:
        shown = super().details()
        if isinstance(self.factory, str):
            shown["builder"] = self.factory
        return shown


def _is_sha256(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (
        DatasetRecord,
        BackboneRecord,
        LossRecord,
        MinerRecord,
        AttackRecord,
        DefenseRecord,
        ProfileRecord,
        ExecutorRecord,
        ModelRecord,
    )
}
KINDS: tuple[str, ...] = tuple(RECORD_TYPES)

__all__ = [
    "Record",
    "Ref",
    "Implementation",
    "ATTACK_FACTS",
    "DEFENSE_FACTS",
    "check_implementation",
    "implementation",
    "reference_aliases",
    "REFERENCE_MINER_LETTERS",
    "SPC2_PREFIX",
    "DatasetRecord",
    "BackboneRecord",
    "LossRecord",
    "MinerRecord",
    "AttackRecord",
    "DefenseRecord",
    "ProfileRecord",
    "ExecutorRecord",
    "ModelRecord",
    "RECORD_TYPES",
    "KINDS",
    "SIZE_28",
    "SIZE_224",
    "TASKS",
    "TASK_CLASSIFICATION",
    "TASK_RETRIEVAL",
    "NO_WEIGHTS",
    "size_family",
]
