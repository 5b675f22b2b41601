"""Seeds: one seed in, a tree of named random streams out.

Replicate ``i`` of master seed ``s`` always gets ``SeedSequence(s, spawn_key=(i,))``,
whatever the worker count. Inside a replicate every random decision draws from a
stream named for what it decides (and, where it applies, for the site), so turning
peer support on, or changing one site, leaves unrelated draws unchanged: common
random numbers across arms and scenarios.
"""

from __future__ import annotations

import hashlib

import numpy as np

# The master seed every command and analysis uses unless told otherwise.
DEFAULT_SEED = 20241


def replicate_seed(master_seed: int, replicate: int) -> np.random.SeedSequence:
    """The seed of replicate ``replicate`` under ``master_seed``; independent of workers."""
    if master_seed < 0 or replicate < 0:
        raise ValueError(
            f"seeds and replicate numbers must be >= 0 (got {master_seed}, {replicate})"
        )
    return np.random.SeedSequence(master_seed, spawn_key=(replicate,))


def as_seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a SeedSequence (got {seed!r})")
    return np.random.SeedSequence(int(seed))


def _name_key(name: str) -> int:
    # A stable 32-bit key per name: Python's hash() is salted per process.
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


class Streams:
    """Named, independent generators derived from one SeedSequence."""

    def __init__(self, seed: int | np.random.SeedSequence) -> None:
        self.root = as_seed_sequence(seed)

    def get(self, name: str) -> np.random.Generator:
        child = np.random.SeedSequence(
            self.root.entropy, spawn_key=(*self.root.spawn_key, _name_key(name))
        )
        return np.random.Generator(np.random.PCG64(child))
