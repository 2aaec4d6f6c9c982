"""Tiles on disk: the 16-bit encoding of a prepared cohort and ``CachedTiles``, which reads them by index.

Images in model units ([-1, 1]) are stored as uint16: ``round((x + 1) / 2 * 65535)``. One step is 2 / 65535 =
3.1e-5 model units (0.006 HU of a 400 HU window), so the round trip is exact to 1.5e-5, 250 times finer than
bf16 training resolves near 1 (2^-8). Domains with values outside [-1, 1] (label values) stay float32.

Files are NumPy ``.npy`` arrays, one per subject and domain: any tool opens them (``numpy.load(f,
mmap_mode="r")``), they memory-map without a dependency, and a subject is written (and a killed preparation
resumed) file by file. ``CachedTiles`` reads the rows a batch asks for at their offsets, so the process's
resident memory holds the batch, never the cohort.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from medgan.errors import DataError

UNIT16 = "unit16"  # [-1, 1] as uint16
FLOAT32 = "float32"
STEP = 2.0 / 65535.0  # one uint16 step in model units


def encode(tiles: np.ndarray) -> tuple[np.ndarray, str]:
    """``[S, C, R, R]`` float tiles as stored: uint16 when every value is in [-1, 1], else float32."""
    tiles = np.asarray(tiles, dtype=np.float32)
    if tiles.size and (tiles.min() < -1.0 or tiles.max() > 1.0):
        return np.ascontiguousarray(tiles), FLOAT32
    return np.round((tiles + 1.0) * (65535.0 / 2.0)).astype(np.uint16), UNIT16


def decode(stored: np.ndarray, encoding: str) -> np.ndarray:
    """Float32 tiles from their stored form."""
    if encoding == UNIT16:
        return stored.astype(np.float32) * np.float32(STEP) - np.float32(1.0)
    return np.asarray(stored, dtype=np.float32)


@dataclass(frozen=True)
class Part:
    """One subject's file of one domain: its rows are global rows ``start .. start + count``; the array's data
    begins ``offset`` bytes into the file (after the ``.npy`` header)."""

    path: Path
    start: int
    count: int
    offset: int


class CachedTiles:
    """``[N, C, R, R]`` float32 tiles of one domain of a prepared cohort, read from disk by index.

    It answers what training asks of a tile tensor: ``len``, ``shape``, ``dtype`` and indexing by an int, a
    slice, an index tensor/array/list, or a tuple whose first item is one of those (``tiles[rows, :1]``);
    ``take(rows)`` is a view of some rows (a subject split) that reads nothing.

    Args:
        parts: the domain's files in row order.
        encoding: how they are stored (``UNIT16`` or ``FLOAT32``).
        shape: ``(C, R, R)`` of one tile.
        rows: the global rows this view shows, in order (None: all).
    """

    dtype = torch.float32

    def __init__(self, parts: Sequence[Part], encoding: str, shape: tuple[int, int, int],
                 rows: np.ndarray | None = None) -> None:
        self.parts = list(parts)
        self.encoding = encoding
        self.tile_shape = tuple(int(s) for s in shape)
        self.starts = np.asarray([part.start for part in self.parts], dtype=np.int64)
        self.total = int(sum(part.count for part in self.parts))
        self.rows = rows
        self.digest: str | None = None  # SHA-256 of the stored tiles of a whole domain (set by open_cache)

    def __len__(self) -> int:
        return self.total if self.rows is None else len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.tile_shape))

    def dim(self) -> int:
        return 4

    @property
    def ndim(self) -> int:
        return 4

    def take(self, rows: Sequence[int] | np.ndarray | torch.Tensor) -> "CachedTiles":
        """The view of ``rows`` (indices into this view), reading nothing."""
        local = np.asarray(torch.as_tensor(np.asarray(rows, dtype=np.int64)).numpy(), dtype=np.int64)
        chosen = local if self.rows is None else self.rows[local]
        return CachedTiles(self.parts, self.encoding, self.tile_shape, chosen)

    def __getitem__(self, key: Any) -> torch.Tensor:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        single = isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.ndim == 0)
        if isinstance(key, slice):
            local = np.arange(len(self))[key]
        else:
            local = np.atleast_1d(np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key, dtype=np.int64))
        local = np.where(local < 0, local + len(self), local)
        if local.size and (local.min() < 0 or local.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} cached tiles")
        tiles = torch.from_numpy(self.read(local if self.rows is None else self.rows[local]))
        if single:
            tiles = tiles[0]
        return tiles[(slice(None), *rest)] if rest and not single else (tiles[rest] if rest else tiles)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Float32 tiles of global ``rows``, in that order.

        Each row is one ``pread`` at its offset: no file stays open or mapped, so what the kernel caches of the
        cohort is page cache, never this process's resident memory (and a batch costs about 1 ms, where opening
        a memory map per subject cost 9 ms at 64 px).
        """
        out = np.empty((len(rows), *self.tile_shape), dtype=np.float32)
        if not len(rows):
            return out
        dtype = np.dtype(np.uint16 if self.encoding == UNIT16 else np.float32)
        row_bytes = int(np.prod(self.tile_shape)) * dtype.itemsize
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for part_index in np.unique(which):
            positions = np.nonzero(which == part_index)[0]
            part = self.parts[int(part_index)]
            handle = os.open(part.path, os.O_RDONLY)
            try:
                for position in positions:
                    local = int(rows[position]) - part.start
                    data = os.pread(handle, row_bytes, part.offset + local * row_bytes)
                    if len(data) != row_bytes:
                        raise DataError("cache file is truncated (run medgan prepare again)", part.path)
                    out[position] = decode(np.frombuffer(data, dtype=dtype).reshape(self.tile_shape), self.encoding)
            finally:
                os.close(handle)
        return out

    def chunks(self, size: int = 4096) -> "Iterator[torch.Tensor]":
        """The tiles in order, ``size`` at a time (what a pass over every tile holds at once)."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def float(self) -> torch.Tensor:
        """Every tile in memory (for the small sets evaluation compares; training never calls it)."""
        return self[:]


def open_array(path: Path) -> np.ndarray:
    """A read-only memory map of one stored ``.npy``; a missing or truncated file raises DataError naming it."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError("cache file is missing (the cache is damaged: run medgan prepare again)", path) from None
    except (ValueError, OSError) as error:
        raise DataError(f"cache file is truncated or corrupt ({error}); run medgan prepare again", path) from None
