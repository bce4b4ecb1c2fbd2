"""The `custos` command: argument parsing and wiring of the subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="custos",
        description="Custos forensic video playback and ONVIF Profile G recorder engine.",
    )
    parser.add_argument("--version", action="version", version=f"custos {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
