"""A cheap seal of an anatomy store's content: the crc32c of every chunk file, recorded at write.

Every array of the store ends each chunk file with a crc32c of the chunk's bytes (see
``anatomy.store._compressors``), so the last four bytes of the chunk files change whenever the
content does. :func:`chunk_digests` hashes them per array; :func:`anatomy.store.write_model`
records the result with the content hash in the ``chunk_digests`` root attribute, and
:func:`anatomy.store.open_model` recomputes it on every open (one small read per chunk file,
no decompression). An array rewritten in place (for example ``post_all`` multiplied by 50, with
valid checksums) is therefore refused, naming the array, instead of being used under its old
content hash. A byte flipped inside a chunk fails the chunk's own checksum when it is read.
``wiring anatomy info --verify`` goes further and recomputes the content hash from the arrays.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from anatomy.errors import StoreValidationError

__all__ = ["ATTR_CHUNK_DIGESTS", "check_chunk_digests", "chunk_digests"]

#: Root attribute holding ``{"content_hash": ..., "arrays": {name: sha256 hex}}``.
ATTR_CHUNK_DIGESTS = "chunk_digests"
_CRC_BYTES = 4


def _array_digest(folder: Path) -> str:
    """sha256 over (relative chunk key, last four bytes) of every chunk file of one array."""
    h = hashlib.sha256()
    chunks = folder / "c"
    keys: list[str] = []
    if chunks.is_dir():
        for root, _dirs, files in os.walk(chunks):
            keys += [os.path.relpath(os.path.join(root, f), chunks) for f in files]
    for key in sorted(keys):
        with (chunks / key).open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _CRC_BYTES))
            tail = fh.read()
        h.update(f"{key}\0{size}\0".encode())
        h.update(tail)
    return h.hexdigest()


def chunk_digests(path: Path, arrays: Iterable[str]) -> dict[str, str]:
    """Digest of each named array's chunk checksums in the store at ``path``."""
    return {name: _array_digest(path / name) for name in sorted(arrays)}


def check_chunk_digests(path: Path, attrs: Mapping[str, Any], arrays: Iterable[str]) -> None:
    """Refuse a store whose chunks or content hash changed since it was written.

    Stores written before the seal existed (no ``chunk_digests`` attribute) are not checked.
    """
    record = attrs.get(ATTR_CHUNK_DIGESTS)
    if record is None:
        return
    hint = ("its content_hash no longer describes it; rebuild the store, or run "
            "`wiring anatomy info --verify` to compare it with its arrays")
    if not isinstance(record, dict) or not isinstance(record.get("arrays"), dict):
        raise StoreValidationError(f"{path}: root attribute {ATTR_CHUNK_DIGESTS!r} is damaged; "
                                   f"{hint}")
    model = attrs.get("model")
    content_hash = model.get("content_hash") if isinstance(model, dict) else None
    if record.get("content_hash") != content_hash:
        raise StoreValidationError(
            f"{path}: the content hash in the attributes was changed after the store was "
            f"written; {hint}"
        )
    sealed: dict[str, Any] = record["arrays"]
    now = chunk_digests(path, arrays)
    for name in sorted(set(sealed) | set(now)):
        if sealed.get(name) != now.get(name):
            raise StoreValidationError(
                f"{path}: array {name} was changed after the store was written (its chunk "
                f"checksums differ from those recorded); {hint}"
            )
