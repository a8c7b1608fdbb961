"""The voxel grid: a value type mapping voxel ids to positions in µm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anatomy.errors import StoreValidationError

__all__ = ["VoxelGrid"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VoxelGrid:
    """A regular grid of cubic voxels; voxel ids run over ``shape`` in C order.

    Coordinates are (x, y, depth) in µm: x and y tangential to the pia, depth measured from the
    pia into the cortex (positive downwards). ``origin_um`` is the outer corner of voxel 0.

    Examples
    --------
    >>> g = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=50.0, shape=(2, 2, 4))
    >>> g.n_voxels
    16
    >>> g.voxel_center_um(np.array([3]))[0].tolist()
    [25.0, 25.0, 175.0]
    """

    origin_um: tuple[float, float, float]
    spacing_um: float = 50.0
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if len(self.origin_um) != 3 or not all(np.isfinite(self.origin_um)):
            raise StoreValidationError(
                f"grid origin_um must be 3 finite numbers, got {self.origin_um!r}"
            )
        if not (np.isfinite(self.spacing_um) and self.spacing_um > 0):
            raise StoreValidationError(
                f"grid spacing_um must be a positive number, got {self.spacing_um!r}"
            )
        if len(self.shape) != 3 or any(int(s) < 1 for s in self.shape):
            raise StoreValidationError(
                f"grid shape must be 3 positive integers, got {self.shape!r}"
            )

    @property
    def n_voxels(self) -> int:
        """Number of voxels ``V``."""
        return int(np.prod(self.shape))

    def voxel_index(self, voxel: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Integer (ix, iy, iz) indices, shape (n, 3), of voxel ids."""
        v = np.asarray(voxel, dtype=np.int64)
        return np.stack(np.unravel_index(v, self.shape), axis=-1).astype(np.int64)

    def voxel_id(self, index: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Voxel ids of integer (ix, iy, iz) indices, shape (n, 3)."""
        idx = np.asarray(index, dtype=np.int64)
        return np.asarray(np.ravel_multi_index(tuple(idx.T), self.shape), dtype=np.int64)

    def voxel_center_um(self, voxel: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Centers (x, y, depth) in µm, shape (n, 3), of voxel ids."""
        idx = self.voxel_index(voxel)
        return np.asarray(np.asarray(self.origin_um) + (idx + 0.5) * self.spacing_um, np.float64)

    def voxel_of_point(self, point_um: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Voxel id of each point (n, 3) in µm, or -1 for points outside the grid."""
        p = np.atleast_2d(np.asarray(point_um, dtype=np.float64))
        idx = np.floor((p - np.asarray(self.origin_um)) / self.spacing_um).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=1)
        out = np.full(len(p), -1, dtype=np.int64)
        if inside.any():
            out[inside] = self.voxel_id(idx[inside])
        return out

    def depth_um(self) -> npt.NDArray[np.float64]:
        """Depth below the pia of every voxel center, shape (V,)."""
        nz = self.shape[2]
        z = self.origin_um[2] + (np.arange(nz) + 0.5) * self.spacing_um
        return np.broadcast_to(z, self.shape).reshape(-1).astype(np.float64)

    def to_dict(self) -> dict[str, object]:
        """JSON-native representation."""
        return {
            "origin_um": [float(v) for v in self.origin_um],
            "spacing_um": float(self.spacing_um),
            "shape": [int(v) for v in self.shape],
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> VoxelGrid:
        """Inverse of :meth:`to_dict`."""
        try:
            origin = tuple(float(v) for v in d["origin_um"])  # type: ignore[attr-defined]
            shape = tuple(int(v) for v in d["shape"])  # type: ignore[attr-defined]
            spacing = float(d["spacing_um"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as err:
            raise StoreValidationError(
                f"grid metadata must have origin_um (3 numbers), spacing_um and shape "
                f"(3 integers); got {d!r}"
            ) from err
        return cls(origin_um=origin, spacing_um=spacing, shape=shape)  # type: ignore[arg-type]
