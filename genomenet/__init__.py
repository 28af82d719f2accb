"""genomenet: long-context genomic language models on LongNet's exact dilated attention."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports, so `import genomenet` stays light (no torch until a model is loaded)."""
    if name == "load_pretrained":
        from genomenet.model.pretrained import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'genomenet' has no attribute {name!r}")
