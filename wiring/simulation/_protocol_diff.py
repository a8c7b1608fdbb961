"""One-line description of how two sampling protocols differ (see
:meth:`wiring.simulation.simulator.Simulator.protocol`).

A simulation store records the protocol its rows were simulated with; a run that asks for
another one (``--nuisance``, ``--replace``, ``--no-pooling``, ``--n-pairs``) must not mix its
rows into it. The refusal names only the fields that differ, each with the store's and the
run's value, in words a user can match to the command's options. Kept apart from
:mod:`wiring.simulation.store` so that module stays small.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wiring._json import json_native

__all__ = ["differing_fields", "nuisance_text", "protocol_mismatch_message"]

#: The order fields are named in (the others follow alphabetically).
_ORDER = ("nuisance", "replace", "pooling", "n_pairs", "pools", "connectome", "version")
#: Longest rendering of one value before it is cut short.
_MAX_CHARS = 80


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS - 1] + "…"


def _nuisance(value: Any, other: Any) -> str:
    """``none`` or the parameter names; with their prior widths when only those differ."""
    if not isinstance(value, Mapping):
        return "none"
    names = [str(n) for n in value.get("names") or []]
    if not names:
        return "none"
    text = ", ".join(names)
    if isinstance(other, Mapping) and list(other.get("names") or []) == names:
        sd = value.get("sd") or []
        text += " (sd " + ", ".join(f"{float(s):g}" for s in sd) + ")"
        if dict(value, sd=None) != dict(other, sd=None):  # differ elsewhere still
            text += " " + json.dumps(value, sort_keys=True)
    return text


def _n_pairs(value: Any) -> str:
    """Pairs per measurement: one number when all are equal, else the list."""
    if not isinstance(value, list) or not value:
        return json.dumps(value)
    if len(set(value)) == 1:
        return f"{value[0]} per measurement"
    return _cut(", ".join(str(v) for v in value)) + " per measurement"


def _pools(value: Any) -> str:
    """Pooled measurements as ``a+b`` groups; ``none`` without any."""
    if not isinstance(value, Mapping) or not value:
        return "none"
    return _cut(", ".join("+".join(str(p) for p in parts) if isinstance(parts, list)
                          else str(parts) for parts in value.values()))


def _value(key: str, value: Any, other: Any) -> str:
    if key == "nuisance":
        return _nuisance(value, other)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if key == "n_pairs":
        return _n_pairs(value)
    if key == "pools":
        return _pools(value)
    return _cut(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def nuisance_text(protocol: Any) -> str:
    """The nuisance parameters of a protocol record, as text (``none`` without any)."""
    return _nuisance((protocol or {}).get("nuisance"), None)


def _canonical(value: Any) -> str:
    return json.dumps(json_native(value), sort_keys=True)


def differing_fields(have: Any, want: Any) -> list[str]:
    """The top-level fields in which two protocol records differ (compared as JSON, so a tuple
    equals its list), the ones a user sets first (nuisance, replace, pooling, n_pairs); the
    pools only when the pooling flag agrees (they follow from it)."""
    have = dict(have) if isinstance(have, Mapping) else {}
    want = dict(want) if isinstance(want, Mapping) else {}
    keys = [k for k in set(have) | set(want)
            if _canonical(have.get(k)) != _canonical(want.get(k))]
    # the pools follow from the pooling flag: name them only when the flag agrees
    if "pooling" in keys and "pools" in keys:
        keys.remove("pools")
    rank = {k: i for i, k in enumerate(_ORDER)}
    return sorted(keys, key=lambda k: (rank.get(k, len(_ORDER)), k))


def protocol_mismatch_message(path: str, have: Any, want: Any) -> str:
    """The one-line refusal to resume store ``path`` (protocol ``have``) with a run whose
    simulator has protocol ``want``, naming only the differing fields with both values, e.g.
    ``simulation store 'sims.zarr' was simulated with nuisance none; this run asks for
    vpm_boutons, target_sites; ...`` (mappings; a missing protocol counts as one without fields)."""
    have = dict(have) if isinstance(have, Mapping) else {}
    want = dict(want) if isinstance(want, Mapping) else {}
    keys = differing_fields(have, want)
    if len(keys) == 1:
        key = keys[0]
        old = f"{key} {_value(key, have.get(key), want.get(key))}"
        new = _value(key, want.get(key), have.get(key))
    else:
        old = " and ".join(f"{k} {_value(k, have.get(k), want.get(k))}" for k in keys)
        new = " and ".join(f"{k} {_value(k, want.get(k), have.get(k))}" for k in keys)
    return (f"simulation store {path!r} was simulated with {old}; this run asks for {new}; "
            f"simulations of two sampling protocols cannot be mixed: write a new store "
            f"(another --out), or pass --overwrite to start this one over")
