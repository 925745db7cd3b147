"""Command line: ``python -m captum_helpers <command>``; see ``--help``."""
from __future__ import annotations

import argparse
import sys

from . import assets, models


def _prefetch(args: argparse.Namespace) -> int:
    """Download what the notebooks use online into their caches, for an offline day."""
    failed = 0
    try:
        model = models.load_model("resnet18")
        print(f"ResNet18 weights: ok ({sum(p.numel() for p in model.parameters()):,} parameters)")
    except RuntimeError as err:
        print(f"ResNet18 weights: FAILED: {err}")
        failed += 1
    try:
        paths = assets.download_walkthrough_photos(force=args.force)
        print("Walkthrough photos: ok (" + ", ".join(str(p) for p in paths) + ")")
    except Exception as err:
        print(f"Walkthrough photos: FAILED: {err}")
        failed += 1
    return 1 if failed else 0


def _photos(args: argparse.Namespace) -> int:
    """Download the walkthrough's cat, teapot and trilobite photos into img/."""
    for path in assets.download_walkthrough_photos(force=args.force):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m captum_helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in [("prefetch", _prefetch), ("photos", _photos)]:
        cmd = sub.add_parser(name, help=func.__doc__, description=func.__doc__)
        cmd.add_argument("--force", action="store_true", help="download again even if present")
        cmd.set_defaults(func=func)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
