"""The simulation store: a chunked, resumable zarr v3 store of training data (θ, x).

Layout (one zarr group)::

    theta         (n, d) float64, chunks (chunk_size, d), NaN until simulated
    x             (n, m) float64, chunks (chunk_size, m), NaN until simulated (or invalid θ)
    chunk_status  (n_chunks,) uint8, one zarr chunk per element: 0 to do, 1 done
    chunk_seed    (n_chunks,) uint64: a fingerprint of each chunk's random stream; its own
                  attribute ``config_digest`` seals the group's configuration attributes
    attrs         schema_version, param_names, measurement_names, measurement_hash,
                  anatomy_hash, rule (provenance), prior (PriorSpec dict), seed, chunk_size, n,
                  streams ("row" or "chunk"; absent means "chunk")

**Integrity (schema version 2).** Every chunk of ``theta``, ``x`` and ``chunk_status`` ends with
a crc32c checksum, and every chunk file is written even when it holds only NaN, so a chunk
marked done whose file is missing or damaged is detected: :meth:`SimulationStore.load` raises a
one-line :class:`StoreFormatError` naming the chunk, and :func:`simulate_to_store` marks such
chunks to do again and redoes them. ``config_digest`` holds a sha256 per configuration
attribute, written beside the group attributes in another file: an edit of the attributes alone
is refused on open, naming the field. Stores of schema version 1 (no checksums, no digest) still
open and load.

**One writer.** :meth:`SimulationStore.create` and :func:`simulate_to_store` hold the store's
lock (:func:`anatomy.storeguard.store_lock`, a ``.<name>.lock`` file beside it) while they
write; a second writer is refused naming the holder.

**Determinism.** With ``streams = "row"`` (the default) row ``j`` draws its θ from counter-based
uniforms keyed by (θ key, j, parameter) and its x from the simulator's stream of index ``j``
(:class:`SupportsIndexedSimulation`), both keys derived from the run seed (:func:`row_keys`): the
content depends only on the seed, the prior and the simulator, never on the chunk size, the
number of workers, the order chunks finish, or how often the run was interrupted. With
``streams = "chunk"`` (simulators that only take a generator, and stores of schema version 1
without the attribute) chunk ``i`` uses two generators spawned from
``numpy.random.SeedSequence(seed, spawn_key=(i,))`` instead, so the chunk size is part of what
determines the content.

**Crash safety.** A chunk's rows are written only by that chunk's task, θ and x first and its
status element last; zarr's local store writes every chunk file atomically (temporary file and
rename). A process killed at any moment therefore leaves each chunk either done with complete
data or still marked to do, and :func:`simulate_to_store` on the same store redoes exactly the
chunks still to do. Status elements live in separate zarr chunks so that concurrent workers never
read-modify-write each other's status.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from anatomy.atomic import move_into_place
from anatomy.storeguard import refuse_foreign, remove_leftovers, store_lock
from wiring._typing import FloatArray
from wiring.errors import (
    OutputExistsError,
    ShapeMismatchError,
    StoreFormatError,
    StoreMismatchError,
)
from wiring.inference.priors import PriorSpec
from wiring.simulation._protocol_diff import protocol_mismatch_message
from wiring.simulation._store_layout import (
    CONFIG_FIELDS,
    FORMAT,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    check_sealed,
    config_digest,
    create_group,
    has_seal,
    is_simulation_store,
)
from wiring.simulation.resources import check_simulation_size

__all__ = [
    "SCHEMA_VERSION",
    "STREAMS",
    "SimulateChunk",
    "SimulationStore",
    "StoreFormatError",
    "SupportsIndexedSimulation",
    "chunk_rngs",
    "is_simulation_store",
    "row_keys",
    "simulate_chunk_rows",
    "simulate_to_store",
]

logger = logging.getLogger(__name__)

#: A picklable simulator: ``simulate_chunk(theta (k, d), rng) -> x (k, m)`` (NaN rows allowed).
SimulateChunk = Callable[[FloatArray, np.random.Generator], Any]

#: Ways rows get their random numbers (see the module docstring).
STREAMS: tuple[str, ...] = ("row", "chunk")
#: The value of a store written before the ``streams`` attribute existed.
_LEGACY_STREAMS = "chunk"


@runtime_checkable
class SupportsIndexedSimulation(Protocol):
    """A simulator whose row ``k`` uses the random stream of index ``start_index + k``.

    :class:`wiring.simulation.simulator.Simulator` is one. Row-keyed stores need it: then the x of a row
    does not depend on which chunk (or batch) it was simulated in.
    """

    def simulate(self, theta: npt.ArrayLike, *, seed: int, start_index: int = 0) -> Any:
        """x (B, m) for θ (B, d)."""
        ...


def row_keys(seed: int) -> tuple[int, int]:
    """The keys (θ draws, simulator streams) of a row-keyed store with run seed ``seed``."""
    state = np.random.SeedSequence(seed).generate_state(2, np.uint64) >> np.uint64(1)
    return int(state[0]), int(state[1])


def chunk_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The two generators of chunk ``index``: one for θ, one for the simulator.

    Both are spawned from ``SeedSequence(seed, spawn_key=(index,))``, a stream that depends on
    the run seed and the global chunk index only.
    """
    ss = np.random.SeedSequence(seed, spawn_key=(index,))
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def simulate_chunk_rows(
    prior: PriorSpec,
    simulate_chunk: SimulateChunk | SupportsIndexedSimulation,
    *,
    seed: int,
    index: int,
    size: int,
    n_measurements: int,
    start: int | None = None,
    streams: str = _LEGACY_STREAMS,
) -> tuple[FloatArray, FloatArray]:
    """θ (size, d) and x (size, m) of chunk ``index``, rows ``start:start + size`` (pure).

    ``streams="row"`` keys every row by its global index ``start + k`` (``start`` required,
    ``simulate_chunk`` must be a :class:`SupportsIndexedSimulation`); ``"chunk"`` uses the
    chunk's generators (:func:`chunk_rngs`).

    Raises
    ------
    ShapeMismatchError
        The simulator returned an array of another shape than (size, m).
    InvalidParameterError
        Row streams without ``start`` or with a simulator that takes only a generator.
    """
    from wiring.errors import InvalidParameterError

    if streams == "row":
        if start is None or not isinstance(simulate_chunk, SupportsIndexedSimulation):
            raise InvalidParameterError(
                "a row-keyed simulation store needs the rows' start index and a simulator with "
                "simulate(theta, seed=, start_index=) (e.g. wiring.simulation.simulator.Simulator); create "
                "the store with streams='chunk' to use a plain callable(theta, rng)"
            )
        key_theta, key_x = row_keys(seed)
        theta = prior.sample_rows(key_theta, start, start + size)
        x = np.asarray(simulate_chunk.simulate(theta, seed=key_x, start_index=start),
                       dtype=np.float64)
    elif streams == "chunk":
        rng_theta, rng_x = chunk_rngs(seed, index)
        theta = prior.sample(size, rng_theta)
        x = np.asarray(simulate_chunk(theta, rng_x), dtype=np.float64)  # type: ignore[operator]
    else:
        raise InvalidParameterError(f"streams = {streams!r}; expected one of {STREAMS}")
    if x.shape != (size, n_measurements):
        raise ShapeMismatchError(
            f"the simulator returned x of shape {x.shape} for {size} parameter vectors; "
            f"expected ({size}, {n_measurements}) = (batch, number of measurements)"
        )
    return theta, x


def _open_group(path: Path, mode: str) -> Any:
    import zarr

    return zarr.open_group(str(path), mode=mode)


def _write_chunk(
    path: str,
    index: int,
    start: int,
    stop: int,
    prior_dict: Mapping[str, Any],
    seed: int,
    n_measurements: int,
    simulate_chunk: SimulateChunk | SupportsIndexedSimulation,
    streams: str = _LEGACY_STREAMS,
) -> int:
    """Simulate chunk ``index`` and write it: θ and x first, the status element last."""
    from wiring._dask import require_visible

    require_visible(path, "simulation store")
    prior = PriorSpec.from_dict(prior_dict)
    theta, x = simulate_chunk_rows(
        prior, simulate_chunk, seed=seed, index=index, size=stop - start,
        n_measurements=n_measurements, start=start, streams=streams,
    )
    group = _open_group(Path(path), "r+")
    # every chunk file is written, even one holding only NaN: a missing file means damage
    group["theta"].with_config({"write_empty_chunks": True})[start:stop] = theta
    group["x"].with_config({"write_empty_chunks": True})[start:stop] = x
    group["chunk_status"][index] = 1
    return stop - start


class SimulationStore:
    """A simulation store on the local file system; see the module docstring for the layout.

    Use :meth:`create`, :meth:`open` or :meth:`open_or_create`; fill it with
    :func:`simulate_to_store`; read the finished rows with :meth:`load`.
    """

    def __init__(self, path: str | os.PathLike[str], group: Any) -> None:
        self._path = Path(path)
        self._group = group
        self._attrs: dict[str, Any] = dict(group.attrs)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        n: int,
        chunk_size: int,
        prior_spec: PriorSpec,
        rule_info: Mapping[str, Any],
        measurement_names: Sequence[str],
        measurement_hash: str,
        anatomy_hash: str,
        seed: int,
        streams: str = "row",
        protocol: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        prefill: SimulateChunk | SupportsIndexedSimulation | None = None,
    ) -> SimulationStore:
        """Create an empty store (all chunks to do), atomically.

        Parameters
        ----------
        path : path-like
            Directory of the new zarr store.
        n : int
            Number of simulations (rows).
        chunk_size : int
            Simulations per chunk (= per task); the last chunk may be shorter.
        prior_spec : PriorSpec
            The prior θ is drawn from; its names are the parameter names.
        rule_info : mapping
            Rule provenance (``name``, ``distribution``, ``version``), JSON-native.
        measurement_names : sequence of str
            Names of the columns of x (length m).
        measurement_hash, anatomy_hash : str
            Content hashes of the measurement set and of the structural model.
        seed : int
            Run seed (non-negative).
        streams : {"row", "chunk"}
            Random numbers keyed per row (content independent of ``chunk_size``; the simulator
            must be a :class:`SupportsIndexedSimulation`) or per chunk (any
            ``callable(theta, rng)``).
        protocol : mapping, optional
            How the simulator emulates the experiments
            (:meth:`wiring.simulation.simulator.Simulator.protocol`); ``None``: recorded by
            :func:`simulate_to_store` from the simulator that fills the first chunk.
        overwrite : bool
            Replace an existing simulation store at ``path`` (never another kind of directory).
        prefill : simulator, optional
            When replacing a store: simulate the first chunk into the new store before it
            replaces the old one, so that the old results survive any failure of the simulator
            or its inputs. Ignored when nothing is replaced.

        Raises
        ------
        OutputExistsError
            ``path`` exists and ``overwrite`` is false, or it is not a simulation store.
        StoreLockedError
            Another process is writing the store.
        """
        config = _config(
            n=n, chunk_size=chunk_size, prior_spec=prior_spec, rule_info=rule_info,
            measurement_names=measurement_names, measurement_hash=measurement_hash,
            anatomy_hash=anatomy_hash, seed=seed, streams=streams, protocol=protocol,
        )
        path = Path(path)
        check_simulation_size(path, n=n, d=len(prior_spec.names),
                              m=len(config["measurement_names"]), chunk_size=chunk_size)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist; create it first")
        with store_lock(path, what="simulation store"):
            remove_leftovers(path)
            if path.exists() or path.is_symlink():
                if not overwrite:
                    raise OutputExistsError(
                        f"{str(path)!r} already exists; pass overwrite=True (--overwrite) to "
                        f"replace it, or choose another path"
                    )
                if not is_simulation_store(path):
                    raise refuse_foreign(path, "a simulation store", OutputExistsError)
            n_chunks = -(-n // chunk_size)
            tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
            try:
                create_group(tmp, config, n_chunks=n_chunks)
                if prefill is not None and path.exists():
                    # results first: the old store is replaced only once the new one holds a
                    # finished chunk, so any failure before that leaves the old one untouched
                    start, stop = 0, min(chunk_size, n)
                    _write_chunk(str(tmp), 0, start, stop, config["prior"], int(seed),
                                 len(config["measurement_names"]), prefill, config["streams"])
                move_into_place(tmp, path)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        logger.info("created simulation store %s: %d simulations in %d chunks", path, n, n_chunks)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SimulationStore:
        """Open an existing store and validate its layout.

        Raises
        ------
        FileNotFoundError
            Nothing at ``path``.
        StoreFormatError
            Not a simulation store, another schema version, or inconsistent arrays.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no simulation store at {str(path)!r}")
        try:
            group = _open_group(path, "r+")
        except Exception as err:
            raise StoreFormatError(
                f"{str(path)!r} is not a zarr store ({err}); create it with `wiring simulate`"
            ) from err
        attrs = dict(group.attrs)
        if attrs.get("format") != FORMAT:
            raise StoreFormatError(
                f"{str(path)!r} is not a simulation store (format {attrs.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        version = attrs.get("schema_version")
        if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
            raise StoreFormatError(
                f"simulation store {str(path)!r} has schema version {version!r}; this version "
                f"reads {sorted(SUPPORTED_SCHEMA_VERSIONS)}. Re-simulate it with this version"
            )
        if version >= 2 or has_seal(group):  # a sealed store relabelled as version 1 too
            check_sealed(path, group, attrs)
        missing = [k for k in CONFIG_FIELDS if k not in ("streams", "protocol") and k not in attrs]
        if missing:
            raise StoreFormatError(
                f"simulation store {str(path)!r} lacks the attribute(s) {missing}; it is damaged: "
                f"re-simulate it"
            )
        store = cls(path, group)
        n, d, m = store.n, len(store.param_names), len(store.measurement_names)
        for name, shape in (("theta", (n, d)), ("x", (n, m)), ("chunk_status", (store.n_chunks,))):
            try:
                got: Any = tuple(group[name].shape) if name in group else "missing"
            except Exception as err:  # damaged zarr.json of the array
                raise StoreFormatError(
                    f"simulation store {str(path)!r}: the metadata of array {name!r} cannot be "
                    f"read ({type(err).__name__}); the store is damaged: re-simulate it"
                ) from err
            if got != shape:
                raise StoreFormatError(
                    f"simulation store {str(path)!r}: array {name!r} has shape {got}, "
                    f"expected {shape}"
                )
        return store

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], **config: Any) -> SimulationStore:
        """Open the store at ``path`` if it exists (checking that its configuration equals
        ``config``), else create it. ``config`` takes the keyword arguments of :meth:`create`.

        Raises
        ------
        StoreMismatchError
            The existing store was made with another configuration.
        """
        if Path(path).exists():
            store = cls.open(path)
            store.check_config(**config)
            return store
        return cls.create(path, **config)

    # -- attributes -------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """Directory of the store."""
        return self._path

    @property
    def attrs(self) -> dict[str, Any]:
        """All attributes (a copy)."""
        return dict(self._attrs)

    @property
    def n(self) -> int:
        """Number of simulations (rows)."""
        return int(self._attrs["n"])

    @property
    def chunk_size(self) -> int:
        """Simulations per chunk."""
        return int(self._attrs["chunk_size"])

    @property
    def n_chunks(self) -> int:
        """Number of chunks."""
        return -(-self.n // self.chunk_size)

    @property
    def seed(self) -> int:
        """Run seed."""
        return int(self._attrs["seed"])

    @property
    def prior_spec(self) -> PriorSpec:
        """The prior θ was drawn from."""
        return PriorSpec.from_dict(self._attrs["prior"])

    @property
    def rule_info(self) -> dict[str, Any]:
        """Rule provenance."""
        return dict(self._attrs["rule"])

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the columns of θ."""
        return tuple(self._attrs["param_names"])

    @property
    def measurement_names(self) -> tuple[str, ...]:
        """Names of the columns of x."""
        return tuple(self._attrs["measurement_names"])

    @property
    def measurement_hash(self) -> str:
        """Content hash of the measurement set."""
        return str(self._attrs["measurement_hash"])

    @property
    def anatomy_hash(self) -> str:
        """Content hash of the structural model."""
        return str(self._attrs["anatomy_hash"])

    @property
    def streams(self) -> str:
        """How rows get their random numbers: ``"row"`` or ``"chunk"`` (module docstring)."""
        return str(self._attrs.get("streams", _LEGACY_STREAMS))

    @property
    def config(self) -> dict[str, Any]:
        """The configuration attributes (:data:`CONFIG_FIELDS`)."""
        return {k: self._attrs.get(k) if k != "streams" else self.streams for k in CONFIG_FIELDS}

    def check_config(self, **config: Any) -> None:
        """Raise :class:`StoreMismatchError` naming the first field that differs from ``config``
        (keyword arguments of :meth:`create`, ``overwrite`` ignored)."""
        config.pop("overwrite", None)
        want = _config(**config)
        for key in CONFIG_FIELDS:
            have = self._attrs.get(key) if key != "streams" else self.streams
            if key == "protocol" and want[key] is None:
                continue  # recorded from the simulator (see simulate_to_store)
            if key == "protocol" and have is None and self.n_done:
                raise StoreMismatchError(_OLD_PROTOCOL.format(path=str(self.path)))
            if key == "protocol" and have is None:
                continue
            if key == "protocol" and have != want[key]:
                raise StoreMismatchError(protocol_mismatch_message(str(self.path), have, want[key]))
            if have != want[key]:
                raise StoreMismatchError(
                    f"simulation store {str(self.path)!r} was made with {key} = {have!r}, but "
                    f"this run has {key} = {want[key]!r}; use a new output path, or pass "
                    f"--overwrite to start over"
                )

    # -- status -----------------------------------------------------------------------------
    def chunk_bounds(self, index: int) -> tuple[int, int]:
        """Row range [start, stop) of chunk ``index``."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.n)

    def chunk_status(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Status per chunk (0 to do, 1 done), re-read from disk."""
        arr = self._group["chunk_status"]
        try:
            return np.asarray(arr[:], dtype=np.uint8)
        except Exception:  # an unreadable status element counts as "to do"
            out = np.zeros(self.n_chunks, dtype=np.uint8)
            for i in range(self.n_chunks):
                try:
                    out[i] = arr[i]
                except Exception:
                    logger.warning("status of chunk %d unreadable; it will be redone", i)
            return out

    def todo_chunks(self) -> list[int]:
        """Indices of the chunks still to simulate."""
        return [int(i) for i in np.flatnonzero(self.chunk_status() == 0)]

    @property
    def n_done(self) -> int:
        """Number of finished simulations."""
        status = self.chunk_status()
        sizes = [self.chunk_bounds(int(i))[1] - self.chunk_bounds(int(i))[0]
                 for i in np.flatnonzero(status == 1)]
        return int(sum(sizes))

    @property
    def is_complete(self) -> bool:
        """Whether every chunk is done."""
        return bool(np.all(self.chunk_status() == 1))

    # -- data -------------------------------------------------------------------------------
    def done_mask(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Boolean mask (n,) of rows in finished chunks."""
        return np.repeat(self.chunk_status() == 1, self.chunk_size)[: self.n]

    def load(self, *, only_done: bool = True) -> tuple[FloatArray, FloatArray]:
        """θ (k, d) and x (k, m) as float64 arrays in memory.

        With ``only_done`` (default) only rows of finished chunks are returned, in row order.
        Loading everything is intended: 10^6 simulations × 10 columns are 80 MB.

        Raises
        ------
        StoreFormatError
            A finished chunk is missing or fails its checksum (named in the message); run
            ``wiring simulate`` with the same arguments to redo it.
        """
        status = self.chunk_status()
        d, m = len(self.param_names), len(self.measurement_names)
        theta = np.full((self.n, d), np.nan)
        x = np.full((self.n, m), np.nan)
        for i in range(self.n_chunks):
            if only_done and status[i] != 1:
                continue
            start, stop = self.chunk_bounds(i)
            problem = self._chunk_problem(i) if status[i] == 1 else None
            if problem is not None:
                raise StoreFormatError(
                    f"simulation store {str(self.path)!r}: chunk {i} (rows {start}-{stop - 1}) "
                    f"is marked done but {problem}; run `wiring simulate` with the same "
                    f"arguments to redo it"
                )
            theta[start:stop] = self._group["theta"][start:stop]
            x[start:stop] = np.asarray(self._group["x"][start:stop]).reshape(stop - start, -1)
        if only_done:
            mask = self.done_mask()
            theta, x = theta[mask], x[mask]
        return theta, x

    def _chunk_problem(self, index: int) -> str | None:
        """Why finished chunk ``index`` cannot be trusted, or None when it reads back intact."""
        start, stop = self.chunk_bounds(index)
        # schema 1 skipped chunk files that held only NaN; θ is never NaN in a finished chunk
        names = ("theta", "x") if self.schema_version >= 2 else ("theta",)
        for name in names:
            arr = self._group[name]
            key = arr.metadata.encode_chunk_key((index, 0))
            if not (self.path / name / key).is_file():
                return f"its {name!r} chunk file {name}/{key} is missing"
        for name in ("theta", "x"):
            try:
                np.asarray(self._group[name][start:stop])
            except Exception as err:
                why = " ".join(str(err).split())[:200]
                return f"its {name!r} chunk cannot be read ({type(err).__name__}: {why})"
        return None

    def verify(self, *, repair: bool = False) -> list[int]:
        """Finished chunks whose data is missing or damaged; with ``repair`` they are marked
        to do again (so :func:`simulate_to_store` redoes them)."""
        bad = [i for i in np.flatnonzero(self.chunk_status() == 1)
               if self._chunk_problem(int(i)) is not None]
        for i in bad:
            logger.warning("simulation store %s: chunk %d is marked done but %s; it will be "
                           "redone", self.path, i, self._chunk_problem(int(i)))
            if repair:
                self._group["chunk_status"][int(i)] = 0
        return [int(i) for i in bad]

    @property
    def schema_version(self) -> int:
        """Layout version the store was written with."""
        return int(self._attrs.get("schema_version", 1))

    def content_hash(self) -> str:
        """sha256 over the finished θ and x rows and the configuration (hex)."""
        theta, x = self.load()
        h = hashlib.sha256()
        h.update(repr(sorted(self.config.items())).encode())
        h.update(np.ascontiguousarray(theta).tobytes())
        h.update(np.ascontiguousarray(x).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"SimulationStore({str(self.path)!r}, n={self.n}, chunk_size={self.chunk_size}, "
                f"done={self.n_done})")


def _config(
    *,
    n: int,
    chunk_size: int,
    prior_spec: PriorSpec,
    rule_info: Mapping[str, Any],
    measurement_names: Sequence[str],
    measurement_hash: str,
    anatomy_hash: str,
    seed: int,
    streams: str = "row",
    protocol: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validated, JSON-native configuration attributes."""
    from wiring.errors import InvalidParameterError

    for name, value in (("n", n), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if streams not in STREAMS:
        raise InvalidParameterError(f"streams = {streams!r}; expected one of {STREAMS}")
    if not isinstance(prior_spec, PriorSpec):
        raise InvalidParameterError(f"prior_spec must be a PriorSpec, got {prior_spec!r}")
    names = [str(s) for s in measurement_names]
    if not names or len(set(names)) != len(names):
        raise InvalidParameterError(
            f"measurement names must be non-empty and unique, got {names!r}"
        )
    return {
        "rule": {str(k): v for k, v in dict(rule_info).items()},
        "param_names": list(prior_spec.names),
        "measurement_names": names,
        "measurement_hash": str(measurement_hash),
        "anatomy_hash": str(anatomy_hash),
        "prior": prior_spec.to_dict(),
        "n": int(n),
        "chunk_size": int(chunk_size),
        "seed": int(seed),
        "streams": str(streams),
        "protocol": None if protocol is None else json.loads(json.dumps(dict(protocol))),
    }


_OLD_PROTOCOL = (
    "simulation store {path!r} holds simulations without a recorded sampling protocol (made "
    "by a simulator version that drew a fresh connection for every sampled pair); its x "
    "cannot be mixed with this simulator's: use a new output path, or pass --overwrite to "
    "start over"
)


def _adopt_protocol(store: SimulationStore, simulator: Any) -> None:
    """Record the simulator's protocol in ``store`` or refuse a store made with another."""
    fn = getattr(simulator, "protocol", None)
    if not callable(fn):
        return
    want = json.loads(json.dumps(fn()))
    have = store.attrs.get("protocol")
    if have is None:
        if store.n_done:
            raise StoreMismatchError(_OLD_PROTOCOL.format(path=str(store.path)))
        import zarr

        group = zarr.open_group(str(store.path), mode="r+")
        group.attrs.update({"protocol": want})
        store._attrs["protocol"] = want
        if store.schema_version >= 2:  # the writer that adds an attribute reseals them
            group["chunk_seed"].attrs["config_digest"] = config_digest(store._attrs)
    elif have != want:
        raise StoreMismatchError(protocol_mismatch_message(str(store.path), have, want))


def simulate_to_store(
    store: SimulationStore | str | os.PathLike[str],
    simulate_chunk: SimulateChunk | SupportsIndexedSimulation,
    *,
    client: Any = None,
    progress: bool = True,
) -> SimulationStore:
    """Simulate every chunk of ``store`` that is still to do; return the store.

    Parameters
    ----------
    store : SimulationStore or path-like
        A store made by :meth:`SimulationStore.create` (finished chunks are kept).
    simulate_chunk : callable
        For a row-keyed store (the default) a :class:`SupportsIndexedSimulation` such as
        :class:`wiring.simulation.simulator.Simulator`; for ``streams="chunk"`` any
        ``simulate_chunk(theta (k, d), rng) -> x (k, m)``. Picklable when ``client`` runs
        processes; it reaches every worker once and is recomputed, not lost, when the
        workers holding it die (:func:`wiring._dask.share`).
    client : distributed.Client, optional
        Run chunks as dask tasks; without one they run serially in this process.
    progress : bool
        Show a progress bar of completed simulations and their rate.

    Finished chunks whose data is missing or damaged are marked to do and redone first. The
    store's lock is held throughout.

    Raises
    ------
    StoreLockedError
        Another process is writing the store.
    Exception
        Whatever a chunk raised; chunks finished before it stay done and a rerun resumes.
    """
    path_ = store.path if isinstance(store, SimulationStore) else Path(store)
    with store_lock(path_, what="simulation store"):
        remove_leftovers(path_)
        if not isinstance(store, SimulationStore):
            store = SimulationStore.open(store)
        store.verify(repair=True)
        return _fill(store, simulate_chunk, client=client, progress=progress)


def _fill(store: SimulationStore, simulate_chunk: SimulateChunk | SupportsIndexedSimulation, *,
          client: Any,
          progress: bool) -> SimulationStore:
    from tqdm.auto import tqdm

    _adopt_protocol(store, simulate_chunk)
    todo = store.todo_chunks()
    m = len(store.measurement_names)
    prior = store.prior_spec.to_dict()
    # absolute: worker jobs may start in another directory (of the same shared filesystem)
    path, seed, streams = str(Path(store.path).resolve()), store.seed, store.streams
    if streams == "row" and not isinstance(simulate_chunk, SupportsIndexedSimulation):
        from wiring.errors import InvalidParameterError

        raise InvalidParameterError(
            f"{path} keys its random numbers per row and needs a simulator with "
            f"simulate(theta, seed=, start_index=) (e.g. wiring.simulation.simulator.Simulator); a plain "
            f"callable(theta, rng) needs a store created with streams='chunk'"
        )
    total_todo = sum(store.chunk_bounds(i)[1] - store.chunk_bounds(i)[0] for i in todo)
    logger.info("%s: %d of %d chunks to simulate (%d simulations)", path, len(todo),
                store.n_chunks, total_todo)
    bar = tqdm(total=store.n, initial=store.n - total_todo, unit="sim", unit_scale=True,
               desc="simulating", disable=not progress, dynamic_ncols=True)
    try:
        if client is None:
            for i in todo:
                start, stop = store.chunk_bounds(i)
                bar.update(_write_chunk(path, i, start, stop, prior, seed, m, simulate_chunk,
                                        streams))
        else:
            from distributed import as_completed

            from wiring._dask import share

            sim = share(client, simulate_chunk, "simulator")
            pending = {
                client.submit(_write_chunk, path, i, *store.chunk_bounds(i), prior, seed, m,
                              sim, streams, pure=False)
                for i in todo
            }
            try:
                for fut in as_completed(list(pending)):
                    bar.update(fut.result())
                    # a finished chunk is in the store: forget its future, so that a worker
                    # lost later does not make dask recompute it
                    pending.discard(fut)
                    fut.release()
            except BaseException:
                client.cancel(list(pending))
                raise
            finally:
                client.cancel([sim])
    finally:
        bar.close()
    return SimulationStore.open(store.path)
