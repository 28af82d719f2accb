"""A 1-D U-Net over per-token states: the decoder the published segmentation models put on their backbones.

Calls like gene or intergenic depend on kilobases around a base, which a few convolutions at full resolution do not
reach. The U-Net convolves at `levels` + 1 resolutions, each `pool` times coarser than the one before, and adds every
coarse result back onto the finer one it came from (skip connections): its receptive field grows with pool**levels
(up to 7,847 tokens either side at kernel 9, pool 4, 5 levels) while costing little more than two full-resolution
convolutions. Windows whose length is not a multiple of pool**levels are padded with zeros at the end and cropped back.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual name


class UNet1d(nn.Module):
    """(b, n, channels) -> (b, n, channels)."""

    def __init__(self, channels: int, kernel: int = 9, levels: int = 5, pool: int = 4) -> None:
        super().__init__()
        if kernel % 2 == 0 or levels < 1 or pool < 2:
            raise ValueError(f"U-Net needs an odd kernel, levels >= 1 and pool >= 2, got {kernel}, {levels}, {pool}")
        self.kernel, self.pool, self.unit = kernel, pool, pool**levels

        def conv() -> nn.Conv1d:
            return nn.Conv1d(channels, channels, kernel, padding=kernel // 2)

        self.down = nn.ModuleList(conv() for _ in range(levels))
        self.bottom = conv()
        self.up = nn.ModuleList(conv() for _ in range(levels))

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[1]
        x = F.pad(x.transpose(1, 2), (0, (-n) % self.unit))  # (b, c, padded n)
        skips = []
        for conv in self.down:
            x = x + F.gelu(conv(x))
            skips.append(x)
            x = F.avg_pool1d(x, self.pool)
        x = x + F.gelu(self.bottom(x))
        for conv, skip in zip(reversed(self.up), reversed(skips), strict=True):
            x = x.repeat_interleave(self.pool, dim=-1) + skip
            x = x + F.gelu(conv(x))
        return x[..., :n].transpose(1, 2)

    @property
    def reach(self) -> int:
        """Tokens on either side of a token that can move its output, at most (a bound, for the docs)."""
        reach, scale = 0, 1
        for _ in self.down:
            reach += (2 * (self.kernel // 2) + self.pool - 1) * scale  # a conv down and one up, the pooling's block
            scale *= self.pool
        return reach + (self.kernel // 2) * scale
