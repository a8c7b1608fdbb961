"""Layout and integrity of the simulation store (see :mod:`wiring.simulation.store`): schema
constants, the empty store, the per-field digest that seals its configuration attributes.

Kept apart from :mod:`wiring.simulation.store` (which reads, fills and verifies stores) so that each
module stays small.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wiring._seal import field_digests
from wiring.errors import StoreFormatError

__all__ = [
    "CONFIG_FIELDS",
    "FORMAT",
    "SCHEMA_VERSION",
    "SEALED_FIELDS",
    "SUPPORTED_SCHEMA_VERSIONS",
    "check_sealed",
    "chunk_fingerprint",
    "config_digest",
    "create_group",
    "has_seal",
    "is_simulation_store",
]

#: Version of the store layout; bumped on incompatible changes (2: chunk checksums, sealed
#: configuration attributes).
SCHEMA_VERSION = 2
#: Versions this package opens (1: no checksums; read as before).
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1, 2})
#: The ``format`` attribute of every simulation store.
FORMAT = "wiring-simulations"

#: Configuration attributes that must agree when an existing store is reused.
CONFIG_FIELDS: tuple[str, ...] = (
    "rule",
    "param_names",
    "measurement_names",
    "measurement_hash",
    "anatomy_hash",
    "prior",
    "n",
    "chunk_size",
    "seed",
    "streams",
    "protocol",
)


def chunk_fingerprint(seed: int, index: int) -> int:
    """A fingerprint of chunk ``index``'s random stream under run seed ``seed``."""
    ss = np.random.SeedSequence(seed, spawn_key=(index,))
    return int(ss.generate_state(1, np.uint64)[0])


def _crc_compressors(level: int | None = 3) -> list[Any]:
    """zstd (optional), then a crc32c checksum so a damaged chunk fails loudly when read."""
    import zarr

    out: list[Any] = [zarr.codecs.ZstdCodec(level=level)] if level is not None else []
    return [*out, zarr.codecs.Crc32cCodec()]


def create_group(path: Path, config: Mapping[str, Any], *, n_chunks: int) -> None:
    """Write an empty store of the current schema at ``path`` (a new directory)."""
    import zarr

    n, chunk_size = int(config["n"]), int(config["chunk_size"])
    d, m = len(config["param_names"]), len(config["measurement_names"])
    group = zarr.open_group(str(path), mode="w-")
    full = {"write_empty_chunks": True}  # a missing chunk file is damage, never "all NaN"
    # a chunk_size beyond n is one chunk of n rows (zarr would otherwise allocate and encode
    # the whole oversized chunk on every write)
    rows = min(chunk_size, n)
    group.create_array("theta", shape=(n, d), chunks=(rows, d), dtype="float64",
                       fill_value=np.nan, compressors=_crc_compressors(), config=full)
    group.create_array("x", shape=(n, m), chunks=(rows, max(m, 1)), dtype="float64",
                       fill_value=np.nan, compressors=_crc_compressors(), config=full)
    group.create_array("chunk_status", shape=(n_chunks,), chunks=(1,), dtype="uint8",
                       fill_value=0, compressors=_crc_compressors(None))
    seeds = group.create_array("chunk_seed", shape=(n_chunks,), chunks=(n_chunks,),
                               dtype="uint64", fill_value=0, compressors=_crc_compressors())
    seeds[:] = np.array([chunk_fingerprint(int(config["seed"]), i) for i in range(n_chunks)],
                        dtype=np.uint64)
    attrs = {"format": FORMAT, "schema_version": SCHEMA_VERSION, **config}
    seeds.attrs["config_digest"] = config_digest(attrs)
    group.attrs.update(attrs)


#: Attributes sealed by ``config_digest`` (every one that changes what the rows mean).
SEALED_FIELDS: tuple[str, ...] = ("format", "schema_version", *CONFIG_FIELDS)


def config_digest(attrs: Mapping[str, Any]) -> dict[str, str]:
    """sha256 (hex) of each sealed attribute's canonical JSON; a missing one hashes as null."""
    return field_digests({key: attrs.get(key) for key in SEALED_FIELDS})


def has_seal(group: Any) -> bool:
    """Whether the store's ``chunk_seed`` array carries a configuration digest."""
    try:
        return "config_digest" in dict(group["chunk_seed"].attrs)
    except Exception:
        return False


def is_simulation_store(path: Path) -> bool:
    """Whether ``path`` is a zarr group whose ``format`` attribute is a simulation store's."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("attributes", {}).get("format") == FORMAT


def check_sealed(path: Path, group: Any, attrs: Mapping[str, Any]) -> None:
    """Refuse a store whose configuration attributes differ from the digest written with it."""
    try:
        sealed = dict(group["chunk_seed"].attrs).get("config_digest")
    except Exception:
        sealed = None
    if not isinstance(sealed, dict):
        raise StoreFormatError(
            f"simulation store {str(path)!r} has lost the digest of its configuration "
            f"(chunk_seed attribute 'config_digest'); it cannot be trusted: re-simulate it"
        )
    now = config_digest(attrs)
    for key in SEALED_FIELDS:
        if sealed.get(key) != now[key]:
            raise StoreFormatError(
                f"simulation store {str(path)!r}: attribute {key!r} was changed after the store "
                f"was written (it no longer matches the store's digest); its rows were not made "
                f"with {key} = {attrs.get(key)!r}. Restore the original or re-simulate"
            )


