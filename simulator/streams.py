"""Random streams: one SeedSequence child per (chunk, stream), never global state.

Chunk ``c`` of a cohort uses three generators (normals, uniforms, exponentials) seeded
by ``SeedSequence(entropy, spawn_key=root.spawn_key + (c, s))`` for s = 0, 1, 2 (and
s = 3, the switching uniforms, when the scenario has crossover), so the
cohort is the same whatever the number of threads, and any chunk can be regenerated
alone.  The kernels take the generators as numba typed lists; the lists are built by
cached jitted helpers, because building them from Python (``List().append``) compiles
numba's list methods on every new process (about 1 s, not cacheable).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.typed import List

from ._cohort_kernels import CHUNK
from .exceptions import ScenarioError

SeedLike = int | np.random.SeedSequence


def as_seed_sequence(seed: SeedLike, param: str = "seed") -> np.random.SeedSequence:
    """Validate ``seed`` (int >= 0 or SeedSequence) and return a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ScenarioError(
            f"{param}={seed!r} is not allowed; it must be an integer >= 0 or a SeedSequence"
        )
    return np.random.SeedSequence(int(seed))


def n_chunks(n: int) -> int:
    """Number of fixed-size chunks holding ``n`` patients."""
    return (n + CHUNK - 1) // CHUNK


def chunk_generator(root: np.random.SeedSequence, chunk: int, stream: int) -> np.random.Generator:
    """The generator of one (chunk, stream) pair."""
    ss = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, chunk, stream))
    return np.random.Generator(np.random.PCG64(ss))


@njit(cache=True)
def _new_list(first):
    """A typed list holding ``first`` (built in compiled code, so the build is cached)."""
    out = List()
    out.append(first)
    return out


@njit(cache=True)
def _push(lst, item):
    lst.append(item)


def chunk_streams(seed: SeedLike, n: int, streams: tuple[int, ...] = (0, 1, 2)) -> tuple[List, ...]:
    """Typed lists of generators, one per chunk, for each of ``streams`` (default the
    normal, uniform and exponential streams; 3 is crossover's switching uniforms)."""
    root = as_seed_sequence(seed)
    gens = [[chunk_generator(root, c, s) for c in range(n_chunks(n))] for s in streams]
    if not gens[0]:
        return tuple(List() for _ in streams)
    lists = tuple(_new_list(g[0]) for g in gens)
    for g, lst in zip(gens, lists, strict=True):
        for x in g[1:]:
            _push(lst, x)
    return lists
