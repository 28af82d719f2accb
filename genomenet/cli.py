"""The `genomenet` command: one entry point that only wires library functions together.

`genomenet fit | validate | test | predict --config configs/NAME.yaml [--key value ...]` is a LightningCLI over
`GenomeLM` and `GenomeDataModule`; `prepare`, `export` and `demo` are plain subcommands dispatched before it.
Errors a user causes end as one line on stderr, `genomenet: error: ...`, and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from genomenet.errors import GenomenetError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
USAGE = """usage: genomenet {fit,validate,test,predict} --config configs/NAME.yaml [--key value ...]
       genomenet prepare FASTA [--cache-dir DIR]
       genomenet export CHECKPOINT OUT_DIR
       genomenet demo [--seq-len N]

Train and evaluate long-context genomic language models. `genomenet fit --help` lists every option."""


def _fail(message: str, code: int = 2) -> int:
    print(f"genomenet: error: {message}", file=sys.stderr)
    return code


# plain subcommands ----------------------------------------------------------------------------------------------


def demo_main(argv: list[str]) -> int:
    """`genomenet demo`: time exact dilated attention against dense attention at one sequence length."""
    parser = argparse.ArgumentParser(prog="genomenet demo", description=demo_main.__doc__)
    parser.add_argument("--seq-len", type=int, default=16384)
    args = parser.parse_args(argv)
    from genomenet.attention.demo import run_demo

    run_demo(seq_len=args.seq_len)
    return 0


def export_main(argv: list[str]) -> int:
    """`genomenet export CHECKPOINT OUT_DIR`: write model.safetensors + config.json, loadable without Lightning."""
    parser = argparse.ArgumentParser(prog="genomenet export", description=export_main.__doc__)
    parser.add_argument("checkpoint", help="a training checkpoint (.ckpt) or an exported model directory")
    parser.add_argument("out_dir", help="directory to write model.safetensors and config.json into")
    args = parser.parse_args(argv)
    from genomenet.model.pretrained import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out_dir)
    print(f"model: {out}")
    return 0


def prepare_main(argv: list[str]) -> int:
    from genomenet.data.cache import prepare_main as data_prepare_main

    return data_prepare_main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"prepare": prepare_main, "export": export_main, "demo": demo_main}


# entry point -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user errors become one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in COMMANDS and argv[0] not in LIGHTNING_COMMANDS:
        return _fail(f"unknown command '{argv[0]}'; choose from {', '.join(LIGHTNING_COMMANDS + tuple(COMMANDS))}")
    try:
        if argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        from genomenet.training.cli import run_lightning_cli

        return run_lightning_cli(argv)
    except GenomenetError as err:
        return _fail(str(err), err.exit_code)
    except FileNotFoundError as err:
        return _fail(f"{err.filename}: {err.strerror}")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
