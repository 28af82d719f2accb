"""Write the segmentation split's blocks (split_blocks.bed, val.bed, test.bed) before pre-training, so the backbone
never sees the sequence of the held-out blocks. The split is the one `SegmentDataModule` draws from the same
`data.split` settings (block size, fractions, seed), so fine-tuning holds out exactly these blocks.

    python tasks/segment_genes/make_split.py FASTA OUT_DIR [--block-size 500000 --val 0.1 --test 0.2 --seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from genomenet.data.cache import prepare  # noqa: E402
from genomenet.data.splits import SplitConfig, split_blocks, write_split_beds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fasta")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--block-size", type=int, default=500_000)
    parser.add_argument("--val", type=float, default=0.1)
    parser.add_argument("--test", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    genome = prepare(args.fasta)
    cfg = SplitConfig("block", args.block_size, args.val, args.test, seed=args.seed)
    paths = write_split_beds(split_blocks(genome.lengths, cfg), args.out_dir)
    print(" ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
