"""Training over a (data parallel x sequence parallel) device mesh: the one place that applies sequence parallelism.

World ranks are laid out as ``rank = dp_rank * sp + sp_rank``: consecutive ranks share one window (the data module
gives each its slice), DDP averages gradients over all ranks. The module's loss on each rank is its slice's NLL sum
times ``sp`` divided by the window's global token count, so DDP's average is the mean over data-parallel replicas of
each full window's mean loss: exactly the gradient of single-device training on the whole sequence.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy
from torch.distributed.device_mesh import init_device_mesh

from genomenet.attention.module import apply_sequence_parallel
from genomenet.attention.sequence_parallel import all_gather_into
from genomenet.errors import ConfigError


class SequenceParallelStrategy(DDPStrategy):
    """``DDPStrategy`` on a ``(dp, sp)`` mesh: samplers shard by the dp rank, attention splits over the sp group.

    Use it as ``trainer.strategy`` with ``sequence_parallel_size`` ranks per sequence; ``trainer.devices`` and
    ``num_nodes`` as usual (their product must be a multiple of ``sequence_parallel_size``).
    """

    strategy_name = "sequence_parallel"

    def __init__(self, sequence_parallel_size: int = 1, **kwargs: Any) -> None:
        """
        Args:
            sequence_parallel_size: Ranks that hold one sequence, each a contiguous chunk of it.
            **kwargs: Passed to ``DDPStrategy`` (``process_group_backend``, ``start_method``, ...).
        """
        super().__init__(**kwargs)
        if sequence_parallel_size < 1:
            raise ConfigError(f"trainer.strategy sequence_parallel_size={sequence_parallel_size} must be >= 1")
        self.sequence_parallel_size = sequence_parallel_size
        self.mesh = None

    @property
    def sequence_group(self):
        return None if self.mesh is None or self.sequence_parallel_size == 1 else self.mesh["sp"].get_group()

    @property
    def sequence_rank(self) -> int:
        return self.global_rank % self.sequence_parallel_size

    def setup_distributed(self) -> None:
        super().setup_distributed()
        world, sp = self.world_size, self.sequence_parallel_size
        if world % sp:
            raise ConfigError(f"trainer.strategy sequence_parallel_size={sp} does not divide the {world} ranks "
                              "(trainer.devices x trainer.num_nodes)")
        self.mesh = init_device_mesh(self.root_device.type, (world // sp, sp), mesh_dim_names=("dp", "sp"))

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any]:
        return {"num_replicas": self.world_size // self.sequence_parallel_size,
                "rank": self.global_rank // self.sequence_parallel_size}

    def setup(self, trainer) -> None:
        group = self.sequence_group
        if group is not None:
            module = self.lightning_module
            try:
                layers = apply_sequence_parallel(module, group)
            except ValueError as err:
                raise ConfigError(str(err)) from None
            if layers == 0:
                raise ConfigError("sequence parallelism needs dilated attention layers: set model.backbone.attention "
                                  "to 'dilated'")
            module.sequence_group = group
        super().setup(trainer)


def global_sum(value: torch.Tensor, group) -> torch.Tensor:
    """Sum of a (detached) tensor over ``group``; the value itself on one device."""
    if group is None:
        return value
    total = value.detach().clone()
    torch.distributed.all_reduce(total, group=group)
    return total


def chunk_first_tokens(input_ids: torch.Tensor, group, fill: int) -> torch.Tensor:
    """``(b, 1)``: the first token of the next rank's chunk (``fill`` on the last rank) of a sequence group."""
    world, rank = torch.distributed.get_world_size(group), torch.distributed.get_rank(group)
    firsts = input_ids[:, :1].contiguous()
    gathered = firsts.new_empty((world * firsts.shape[0], 1))
    all_gather_into(gathered, firsts, group=group)
    if rank == world - 1:
        return torch.full_like(firsts, fill)
    return gathered.view(world, *firsts.shape)[rank + 1]
