"""The backbone (LongNet over tokens), its objectives, and export / load of trained weights.

Model code imports neither data nor training code and knows nothing of parallelism.
"""

from genomenet.model.longnet import LongNet, LongNetConfig

__all__ = ["LongNet", "LongNetConfig"]
