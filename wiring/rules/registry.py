"""Finding, loading and checking wiring rules: the built-ins plus third-party plugins.

Built-in rules are named in :data:`BUILTIN_RULES`, an explicit table from rule name to
``"module:Class"`` that is imported only when a rule is asked for. Third-party distributions
advertise rules through the entry-point group ``wiring.rules``::

    [project.entry-points."wiring.rules"]
    dso_distance = "wiring_distance_rule:DSODistance"

Discovery reads only distribution metadata; a rule's module is imported the first time the rule
is requested, and the result is cached until :func:`refresh_rules`. The entry-point name must
equal the class's ``name``.

Failure modes are explicit, so that results never depend on what happens to be installed:

- an unknown name raises :class:`~wiring.errors.RuleNotFoundError` listing the installed rules,
  with a suggestion for near misses;
- a plugin that fails to import (or breaks the contract) is skipped by :func:`list_rules` with a
  :class:`~wiring.errors.WiringWarning`, and :func:`get_rule` raises
  :class:`~wiring.errors.RuleLoadError` chained from the original error;
- two distributions providing one name is an error naming both, whichever was installed first.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from wiring.errors import (
    RuleContractError,
    RuleLoadError,
    RuleNotFoundError,
    StoreMismatchError,
    WiringWarning,
)
from wiring.rules.base import PAIR_FEATURES, VOXEL_FEATURES, ParamSpec, WiringRule

__all__ = [
    "BUILTIN_RULES",
    "DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "RuleInfo",
    "check_rule",
    "get_rule",
    "list_rules",
    "refresh_rules",
    "rule_from_identity",
    "rule_identity",
    "rule_provenance",
]

logger = logging.getLogger(__name__)

#: Entry-point group third-party distributions register their rules under.
ENTRY_POINT_GROUP = "wiring.rules"
#: The distribution that ships the built-in rules.
DISTRIBUTION = "wiring-sbi"
#: Built-in rules: name -> ``"module:Class"``, imported on first use.
BUILTIN_RULES: Mapping[str, str] = MappingProxyType(
    {
        "dso": "wiring.rules.dso:DSO",
        "dso_linear": "wiring.rules.dso_linear:DSOLinear",
        "peters_neuron": "wiring.rules.peters_neuron:PetersNeuron",
        "peters_synapse": "wiring.rules.peters_synapse:PetersSynapse",
    }
)

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_LEVELS = ("voxel", "pair")
_SYNAPSES = ("poisson", "binomial", "deterministic")
_FIX = "see wiring.rules.base.WiringRule for the contract"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleInfo:
    """One installed rule as :func:`list_rules` reports it.

    ``status`` is ``"ok"`` when the rule imports and satisfies the contract, ``"broken"``
    otherwise (then ``error`` says why and the rule's own fields are empty).
    """

    name: str
    distribution: str
    version: str
    target: str
    params: tuple[ParamSpec, ...] = ()
    level: str = ""
    synapses: str = ""
    summary: str = ""
    status: Literal["ok", "broken"] = "ok"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-native representation (what ``wiring rules list --json`` prints)."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target,
            "params": [p.to_dict() for p in self.params],
            "level": self.level,
            "synapses": self.synapses,
            "summary": self.summary,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class _Source:
    """One provider of a rule name: where it comes from and how to import it."""

    name: str
    target: str
    distribution: str
    version: str
    loader: Callable[[], object] = field(compare=False)

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version} ({self.target})"


class _Cache:
    """Discovered sources and loaded classes, until :func:`refresh_rules`."""

    sources: ClassVar[dict[str, list[_Source]] | None] = None
    classes: ClassVar[dict[str, type[WiringRule]]] = {}


def refresh_rules() -> None:
    """Forget discovered and loaded rules; the next lookup reads the installed plugins again.

    Call this after installing or uninstalling a plugin in a running session.
    """
    _Cache.sources = None
    _Cache.classes = {}


def _own_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree
        from wiring import __version__

        return __version__


def _import_target(target: str) -> object:
    module_name, _, attr = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _canonical(name: str) -> str:
    """PEP 503 normalized distribution name, so provenance does not depend on the build tool."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _entry_points() -> list[metadata.EntryPoint]:
    """Entry points of the ``wiring.rules`` group (a seam for tests)."""
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _discover() -> dict[str, list[_Source]]:
    if _Cache.sources is not None:
        return _Cache.sources
    own = _own_version()
    found: dict[str, list[_Source]] = {}
    for name, target in BUILTIN_RULES.items():
        found[name] = [_Source(name, target, DISTRIBUTION, own, partial(_import_target, target))]
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        src = _Source(
            ep.name,
            ep.value,
            _canonical(dist.name) if dist is not None else "unknown distribution",
            dist.version if dist is not None else "unknown version",
            ep.load,
        )
        have = found.setdefault(ep.name, [])
        # the same entry point seen twice (e.g. a path listed twice) is one provider
        if not any((s.distribution, s.target) == (src.distribution, src.target) for s in have):
            have.append(src)
    for sources in found.values():
        sources.sort(key=lambda s: (s.distribution != DISTRIBUTION, s.distribution, s.target))
    _Cache.sources = found
    logger.debug("discovered wiring rules: %s", ", ".join(sorted(found)))
    return found


def _not_found(name: str, known: list[str]) -> RuleNotFoundError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return RuleNotFoundError(
        f"no wiring rule named {name!r}{hint}. Installed rules: {', '.join(known)}. Run "
        f"`wiring rules list` to see them with their parameters, install the distribution that "
        f"provides {name!r}, or pass the rule class itself to get_rule()"
    )


def _duplicate(name: str, sources: list[_Source]) -> RuleLoadError:
    providers = " and ".join(s.label for s in sources)
    return RuleLoadError(
        f"wiring rule {name!r} is provided by more than one distribution: {providers}. Results "
        f"must not depend on install order, so uninstall all but one of them "
        f"(pip uninstall <distribution>)"
    )


def _load(src: _Source) -> type[WiringRule]:
    try:
        obj = src.loader()
    except Exception as err:
        raise RuleLoadError(
            f"wiring rule {src.name!r} from {src.label} failed to import: "
            f"{type(err).__name__}: {err}. Fix or reinstall {src.distribution!r}, or uninstall "
            f"it; `wiring rules list` shows the status of every installed rule"
        ) from err
    if not isinstance(obj, type):
        raise RuleContractError(
            f"wiring rule {src.name!r} from {src.label} must point at a class, got "
            f"{type(obj).__name__}; {_FIX}"
        )
    try:
        check_rule(obj)
    except RuleContractError as err:
        raise RuleContractError(f"wiring rule {src.name!r} from {src.label}: {err}") from err
    own_name = getattr(obj, "name", None)
    if own_name != src.name:
        raise RuleContractError(
            f"entry point {src.name!r} of {src.label} loads a rule whose name is {own_name!r}; "
            f"the entry-point name must equal the class's name: rename one of them"
        )
    rule_cls: type[WiringRule] = obj
    return rule_cls


def _rule_class(name: str) -> type[WiringRule]:
    if name in _Cache.classes:
        return _Cache.classes[name]
    found = _discover()
    sources = found.get(name)
    if not sources:
        raise _not_found(name, sorted(found))
    if len(sources) > 1:
        raise _duplicate(name, sources)
    cls = _load(sources[0])
    _Cache.classes[name] = cls
    return cls


def get_rule(rule: str | type[WiringRule] | WiringRule) -> WiringRule:
    """A wiring rule instance from its registered name, its class or an instance.

    Parameters
    ----------
    rule
        A rule name (see ``wiring rules list``), a rule class (so an uninstalled rule, e.g.
        one defined in a notebook, can be used directly) or an instance.

    Returns
    -------
    WiringRule
        An instance that passed :func:`check_rule`.

    Raises
    ------
    RuleNotFoundError
        No installed rule has that name; the message lists the installed ones.
    RuleLoadError
        The providing plugin fails to import, breaks the contract, or two distributions
        provide the name.

    Examples
    --------
    >>> get_rule("dso").name
    'dso'
    """
    if isinstance(rule, str):
        return _rule_class(rule)()
    if isinstance(rule, type):
        check_rule(rule)
        return rule()
    check_rule(rule)
    return rule


def list_rules(*, include_broken: bool = False) -> list[RuleInfo]:
    """Every installed rule, sorted by name.

    A rule that fails to load (import error, contract violation, duplicate name) is skipped
    with a :class:`~wiring.errors.WiringWarning`, or with ``include_broken=True`` reported
    with ``status="broken"`` and the reason in ``error`` (no warning).
    """
    out: list[RuleInfo] = []
    for name, sources in sorted(_discover().items()):
        try:
            cls = _rule_class(name)
        except RuleLoadError as err:
            if not include_broken:
                warnings.warn(f"skipping wiring rule {name!r}: {err}", WiringWarning, stacklevel=2)
                continue
            out.extend(
                RuleInfo(
                    name=name,
                    distribution=s.distribution,
                    version=s.version,
                    target=s.target,
                    status="broken",
                    error=str(err),
                )
                for s in sources
            )
            continue
        src = sources[0]
        doc = inspect.getdoc(cls) or ""
        out.append(
            RuleInfo(
                name=name,
                distribution=src.distribution,
                version=src.version,
                target=src.target,
                params=tuple(cls.params),
                level=str(cls.level),
                synapses=str(cls.synapses),
                summary=doc.strip().splitlines()[0] if doc.strip() else "",
            )
        )
    return out


def check_rule(rule: type[WiringRule] | WiringRule) -> None:
    """Check that a rule class (or instance) satisfies the :class:`WiringRule` contract.

    Checked: ``name`` is a snake_case string; ``params`` is a non-empty tuple of
    :class:`ParamSpec` with unique names; ``level`` and ``synapses`` are valid and compatible
    (``binomial`` needs voxel level); ``features`` is a non-empty tuple naming known features
    (pair-level rules see only :data:`PAIR_FEATURES`; voxel-level rules see
    :data:`VOXEL_FEATURES` and, broadcast to rows, :data:`PAIR_FEATURES`); the class
    instantiates without arguments; ``rate`` takes exactly ``(features, theta)``, no
    ``*args``/``**kwargs`` and no other options (every option is a ParamSpec).

    Raises
    ------
    RuleContractError
        Naming every problem found.

    Examples
    --------
    >>> from wiring.rules.dso import DSO
    >>> check_rule(DSO)
    """
    cls = rule if isinstance(rule, type) else type(rule)
    where = f"{cls.__module__}.{cls.__qualname__}"
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        problems.append(f"name must be a snake_case string such as 'my_rule', got {name!r}")
    params = getattr(cls, "params", None)
    if not isinstance(params, tuple) or not all(isinstance(p, ParamSpec) for p in params):
        problems.append(f"params must be a tuple of wiring.rules.base.ParamSpec, got {params!r}")
    elif not params:
        problems.append("params is empty: a rule needs at least one parameter to infer")
    else:
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"parameter names must be unique, repeated: {dupes}")
    level = getattr(cls, "level", None)
    if level not in _LEVELS:
        problems.append(f"level must be one of {list(_LEVELS)}, got {level!r}")
    synapses = getattr(cls, "synapses", None)
    if synapses not in _SYNAPSES:
        problems.append(f"synapses must be one of {list(_SYNAPSES)}, got {synapses!r}")
    elif synapses == "binomial" and level == "pair":
        problems.append(
            "synapses='binomial' (one draw per shared voxel) needs level='voxel', got 'pair'"
        )
    feats = getattr(cls, "features", None)
    allowed = PAIR_FEATURES if level == "pair" else VOXEL_FEATURES + PAIR_FEATURES
    if not isinstance(feats, tuple) or not all(isinstance(f, str) for f in feats) or not feats:
        problems.append(f"features must be a non-empty tuple of feature names, got {feats!r}")
    else:
        unknown = [f for f in feats if f not in allowed]
        if unknown:
            problems.append(
                f"features {unknown} are not available at level {level!r}; allowed: {list(allowed)}"
            )
    instance: object | None = None
    try:
        instance = rule if not isinstance(rule, type) else cls()
    except Exception as err:
        problems.append(
            f"the class must instantiate without arguments (rules are stateless), but "
            f"{cls.__qualname__}() raised {type(err).__name__}: {err}"
        )
    rate = getattr(instance, "rate", None) if instance is not None else getattr(cls, "rate", None)
    if not callable(rate):
        problems.append("rate(features, theta) method is missing")
    elif instance is not None:
        try:
            sig = inspect.signature(rate)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            kinds = [p.kind for p in sig.parameters.values()]
            if inspect.Parameter.VAR_POSITIONAL in kinds or inspect.Parameter.VAR_KEYWORD in kinds:
                problems.append(
                    f"rate{sig} must not take *args or **kwargs: every option of a rule is an "
                    f"explicit ParamSpec"
                )
            elif len(kinds) != 2 or any(
                k
                not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for k in kinds
            ):
                problems.append(
                    f"rate{sig} must take exactly (features, theta): every option of a rule "
                    f"is an explicit ParamSpec"
                )
    if problems:
        raise RuleContractError(
            f"{where} breaks the wiring-rule contract: " + "; ".join(problems) + f" ({_FIX})"
        )


def _distribution_of_module(module: str) -> tuple[str | None, str | None]:
    top = module.partition(".")[0]
    dists = sorted(metadata.packages_distributions().get(top, []))
    if not dists:
        return None, None
    try:
        return dists[0], metadata.version(dists[0])
    except metadata.PackageNotFoundError:
        return dists[0], None


def rule_provenance(rule: str | type[WiringRule] | WiringRule) -> dict[str, str | None]:
    """Where a rule comes from: ``{"name", "distribution", "version"}`` (JSON-native).

    For a registered rule, its providing distribution and that distribution's version
    (built-ins: ``wiring-sbi``). For a class that is not the registered rule of its name
    (e.g. defined in a notebook), the distribution that ships its module if any, else None.

    Examples
    --------
    >>> rule_provenance("dso")["distribution"]
    'wiring-sbi'
    """
    if isinstance(rule, str):
        cls: type[WiringRule] = _rule_class(rule)
    else:
        cls = rule if isinstance(rule, type) else type(rule)
    name = str(cls.name)
    target = f"{cls.__module__}:{cls.__qualname__}"
    sources = _discover().get(name, [])
    for src in sources:
        if src.target == target:
            return {"name": name, "distribution": src.distribution, "version": src.version}
    if len(sources) == 1:
        try:
            registered = _rule_class(name)
        except RuleLoadError:
            registered = None
        if registered is cls:
            src = sources[0]
            return {"name": name, "distribution": src.distribution, "version": src.version}
    dist, version = _distribution_of_module(cls.__module__)
    return {"name": name, "distribution": dist, "version": version}


def rule_identity(rule: str | type[WiringRule] | WiringRule) -> dict[str, Any]:
    """The JSON-native identity of a rule: its ``name`` and its ``params`` (ParamSpec dicts).

    Stored with every result (simulations, posteriors, connectomes) so that it can be checked
    against the installed rule with :func:`rule_from_identity`.

    Examples
    --------
    >>> [p["name"] for p in rule_identity("dso")["params"]]
    ['theta_pre', 'theta_post', 'theta_postall']
    """
    if isinstance(rule, str):
        rule = get_rule(rule)
    return {"name": str(rule.name), "params": [p.to_dict() for p in rule.params]}


def rule_from_identity(identity: Mapping[str, Any]) -> WiringRule:
    """The installed rule matching a stored :func:`rule_identity`.

    Raises
    ------
    RuleNotFoundError
        The named rule is not installed.
    StoreMismatchError
        The installed rule's parameters differ from the recorded ones (e.g. another version of
        the plugin), naming the first difference.

    Examples
    --------
    >>> rule_from_identity(rule_identity("dso")).name
    'dso'
    """
    if not isinstance(identity, Mapping) or "name" not in identity or "params" not in identity:
        raise StoreMismatchError(
            f"a rule identity is a mapping with keys 'name' and 'params', got {identity!r}"
        )
    rule = get_rule(str(identity["name"]))
    recorded = [ParamSpec.from_dict(d) for d in identity["params"]]
    if list(rule.params) != recorded:
        have = [p.name for p in rule.params]
        want = [p.name for p in recorded]
        diff = next(
            (
                f"{a.name}: installed {a!r}, recorded {b!r}"
                for a, b in zip(rule.params, recorded, strict=False)
                if a != b
            ),
            f"installed parameters {have}, recorded {want}",
        )
        prov = rule_provenance(rule)
        raise StoreMismatchError(
            f"the installed rule {rule.name!r} ({prov['distribution']} {prov['version']}) does "
            f"not match the recorded one ({diff}); install the version the result was made with"
        )
    return rule
