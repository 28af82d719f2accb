"""Running trained models over genomes: tiling and stitching (`tiling`), the batched runner (`runner`), resumable
chunked work (`parts`), and the commands built on them: `embed` (HDF5 embeddings, `store`) and `track` (bedGraph).

Names are imported on first use, so reading an embedding file does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Embeddings": "store",
    "read_embeddings": "store",
    "EmbedOptions": "embed",
    "embed": "embed",
    "Tile": "tiling",
    "tile_region": "tiling",
    "InferenceModel": "runner",
    "run_tiles": "runner",
    "TrackOptions": "tracks",
    "track": "tracks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genomenet.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(f"genomenet.inference.{_EXPORTS[name]}"), name)
