"""Shared fixtures: the small real genomes in data/ (see data/README.md) and throwaway caches."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED_GENOMES = REPO.parent / "shared" / "data" / "genomes"

LAMBDA = DATA / "lambda_phage.fa.gz"  # plain gzip, 48,502 bp
DMEL = DATA / "dmel_chr4_1.1-1.3Mb.fa.gz"  # bgzip, 200 kb, soft-masked, one 17,000 N run
CHR20 = DATA / "grch37_chr20_59-159kb.fa"  # plain text, 100 kb, starts with 1,000 N


@pytest.fixture(autouse=True)
def seeded_random_generators(request: pytest.FixtureRequest) -> int:
    """Every test starts with torch's, numpy's global and Python's generators seeded, so a failure reproduces: the
    seed is a hash of the test's id (tests differ from each other); GENOMENET_TEST_SEED=N shifts every seed, for
    fresh inputs on demand. Tests whose meaning depends on their data seed their own generators besides."""
    import torch

    seed = (zlib.crc32(request.node.nodeid.encode()) + int(os.environ.get("GENOMENET_TEST_SEED", "0"))) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh cache folder per test."""
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for read-only tests, so each real genome is prepared once per run."""
    return tmp_path_factory.mktemp("genomenet-cache")


@pytest.fixture(scope="session")
def dmel(session_cache: Path):
    from genomenet.data.cache import prepare

    return prepare(DMEL, session_cache)


@pytest.fixture(scope="session")
def lambda_phage(session_cache: Path):
    from genomenet.data.cache import prepare

    return prepare(LAMBDA, session_cache)


@pytest.fixture
def write_fasta(tmp_path: Path):
    """Write bytes to a file in the test's folder; returns its path."""

    def write(data: bytes, name: str = "genome.fa") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write
