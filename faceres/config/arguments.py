"""params.yaml on a command line: ``--params FILE`` and ``-S KEY=VALUE`` overrides, as `dvc exp run -S` takes them
(the `faceres` command and the training stage's own entry point, which the GPU launcher re-executes)."""

from __future__ import annotations

import argparse

from faceres.config.loader import parse_override
from faceres.config.schema import PARAMS_FILE, Config, load_config


def add_params_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    parser.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter, e.g. -S skips=6 -S profiles.cpu.epochs=1 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.params, overrides=dict(parse_override(o) for o in args.overrides))
