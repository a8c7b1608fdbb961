"""Per-field digests that let two files vouch for each other.

A writer records ``field_digests(fields)`` (a sha256 of each field's canonical JSON) in a second
file: the posterior's ``weights.pt`` seals its ``manifest.json``, a simulation store's
``chunk_seed`` array seals the group's attributes, a connectome store's ``pre`` array seals
the group's attributes. Because the second file is itself covered by
a checksum the first one records (``weights_sha256``; the crc32c of the store's chunks), editing
either file alone is detected, and the digest names the field that changed.

What this does not do: without a secret key nobody can tell a deliberate forgery (both files
rewritten consistently, checksums recomputed) from the original. It catches hand edits,
accidental changes and copies of one file next to another's partner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["changed_fields", "decode_seal", "encode_seal", "field_digests"]


def field_digests(fields: Mapping[str, Any]) -> dict[str, str]:
    """sha256 (hex) of each field's canonical JSON (sorted keys, no spaces)."""
    return {
        str(key): hashlib.sha256(
            json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()
        ).hexdigest()
        for key, value in fields.items()
    }


def changed_fields(sealed: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
    """Names of the fields whose digest differs from ``sealed``, were added or were removed."""
    now = field_digests(fields)
    keys = sorted(set(sealed) | set(now))
    return [k for k in keys if sealed.get(k) != now.get(k)]


def encode_seal(digests: Mapping[str, str]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The digests as a uint8 array of UTF-8 JSON (storable as a tensor or zarr array)."""
    raw = json.dumps(dict(digests), sort_keys=True).encode()
    return np.frombuffer(raw, dtype=np.uint8).copy()


def decode_seal(values: Any) -> dict[str, str] | None:
    """Digests from :func:`encode_seal`'s array, or None when they cannot be decoded."""
    try:
        out = json.loads(np.asarray(values, dtype=np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError, TypeError):
        return None
    if not isinstance(out, dict) or not all(isinstance(v, str) for v in out.values()):
        return None
    return {str(k): v for k, v in out.items()}
