"""The `genomenet` command: one entry point that only wires library functions together."""

from __future__ import annotations

import argparse
import sys

from genomenet.errors import GenomenetError


def _demo(args: argparse.Namespace) -> None:
    from genomenet.attention.demo import run_demo

    run_demo(seq_len=args.seq_len)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genomenet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="check exact dilated attention against a dense reference and time it")
    demo.add_argument("--seq-len", type=int, default=16384)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user errors become one line on stderr and exit code 2."""
    args = _build_parser().parse_args(argv)
    try:
        args.func(args)
    except GenomenetError as err:
        print(f"genomenet: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
