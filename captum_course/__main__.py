"""Command line: ``python -m captum_course <command>``; see ``--help``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path



def _prefetch(args: argparse.Namespace) -> int:
    """Download the ResNet18 weights and the walkthrough's photos into their caches and verify
    them, for an offline day."""
    from .doctor import prefetch

    return prefetch(force=args.force)


def _photos(args: argparse.Namespace) -> int:
    """Download the walkthrough's cat, teapot and trilobite photos into img/."""
    from captum_helpers import assets

    for path in assets.download_walkthrough_photos(force=args.force):
        print(path)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    """Print what the notebooks will use (versions, model and why, caches, photos, Insights,
    browser); exit 1 if something they need is missing."""
    from .doctor import doctor

    return doctor()


def _learner(args: argparse.Namespace) -> int:
    """Write learner copies of the notebooks: cells tagged `solution` removed, outputs cleared; a
    copy you changed is kept."""
    from .handouts import NOTEBOOKS_DIR, ROOT, build_learner_copies

    out, notebooks = args.out or ROOT / "learner", args.notebooks or NOTEBOOKS_DIR
    for path, copy in build_learner_copies(out, notebooks).items():
        if copy.status == "kept":
            print(f"{path}: kept as it is, it has your changes; the new copy is {copy.beside.name}")
        else:
            print(f"{path} ({copy.removed} solution cell{'s' if copy.removed != 1 else ''} "
                  f"removed, {copy.status})")
    return 0


def _site(args: argparse.Namespace) -> int:
    """Build the course website: run every notebook of both editions (or take its kept run), then
    Sphinx; exit 1 if either fails."""
    from .site import (ROOT, RUNS, Settings, all_notebooks, build_site, check_runs,
                       explorer_results, run_notebooks)

    out = args.out or ROOT / "site"
    settings = Settings(**{k: v for k, v in vars(args).items() if k in Settings._fields and v})
    try:
        if args.explorer_only:
            data = explorer_results(RUNS)
            print(f"notebook 05's live explorer: {len(data['photos'])} photos, "
                  f"{len(data['maps'])} methods, {data['model']}, kept in {RUNS}")
            return 0
        if args.run_only:
            check_runs(run_notebooks(all_notebooks(args.run_only), RUNS, jobs=args.jobs))
            return 0
        build_site(out, jobs=args.jobs, settings=settings)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"Open {out / 'index.html'} (English) or {out / 'zh-CN' / 'index.html'} (中文)")
    return 0


def _expected(args: argparse.Namespace) -> int:
    """Write into the instructor's guides the key lines each notebook prints on each model, read
    from the kept runs (build/runs/); --check only compares."""
    from .expected import RUNS, run

    return run(runs=args.runs or RUNS, check=args.check, latest=args.latest)


def _add_course_commands(sub: argparse._SubParsersAction) -> None:
    """The instructor's commands: doctor, learner, site, expected."""
    cmd = sub.add_parser("doctor", help=_doctor.__doc__, description=_doctor.__doc__)
    cmd.set_defaults(func=_doctor)
    cmd = sub.add_parser("learner", help=_learner.__doc__, description=_learner.__doc__)
    cmd.add_argument("--out", type=Path, default=None,
                     help="output folder (default: learner/ beside notebooks/)")
    cmd.add_argument("--notebooks", type=Path, default=None,
                     help="folder of the notebooks (default: notebooks/)")
    cmd.set_defaults(func=_learner)
    cmd = sub.add_parser("site", help=_site.__doc__, description=_site.__doc__)
    cmd.add_argument("--out", type=Path, default=None,
                     help="output folder (default: site/ beside notebooks/)")
    cmd.add_argument("--jobs", type=int, default=2,
                     help="notebooks run at a time (default: %(default)s)")
    cmd.add_argument("--run-only", nargs="+", metavar="EDITION", choices=["en", "zh-CN"],
                     help="only run these editions' notebooks and keep the runs in build/runs/; "
                          "exit 1 if one fails")
    cmd.add_argument("--explorer-only", action="store_true",
                     help="only compute notebook 05's live explorer's results (or find them) "
                          "and keep them in build/runs/")
    # captum_course.site.Settings
    for name in ("repository", "branch", "jupyterhub_url", "binderhub_url"):
        cmd.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                         help="where the launch buttons lead (defaults and meaning: docs/site.md)")
    cmd.set_defaults(func=_site)
    cmd = sub.add_parser("expected", help=_expected.__doc__, description=_expected.__doc__)
    cmd.add_argument("--runs", type=Path, default=None,
                     help="folder of the kept runs (default: build/runs/)")
    cmd.add_argument("--check", action="store_true",
                     help="change nothing; exit 1 if a guide's section differs from the runs")
    cmd.add_argument("--latest", action="store_true",
                     help="where a notebook has no run of its current code, take its newest kept "
                          "run (and say so)")
    cmd.set_defaults(func=_expected)


def _insights(args: argparse.Namespace) -> int:
    """Open Captum Insights on the photos in img/ in a standalone server and print its URL; Ctrl-C
    stops it."""
    from .insights import run_standalone

    return run_standalone(host=args.host, port=args.port, model_name=args.model)


def _model_name(name: str) -> str:
    """A name ``load_model`` takes; read only when ``--model`` is given (the list imports torch)."""
    from captum_helpers.models import MODEL_NAMES

    if name not in MODEL_NAMES:
        raise argparse.ArgumentTypeError(f"{name!r}: choose one of {', '.join(MODEL_NAMES)}")
    return name


def _add_insights_command(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("insights", help=_insights.__doc__, description=_insights.__doc__)
    cmd.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; "
                          "0.0.0.0: every network)")
    cmd.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    cmd.add_argument("--model", type=_model_name, default=None,
                     help="classifier, as for load_model: auto, resnet18 or efficientnet_lite0 "
                          "(default: $CAPTUM_HELPERS_MODEL or auto)")
    cmd.set_defaults(func=_insights)


def _lab(args: argparse.Namespace) -> int:
    """Open JupyterLab on the notebooks: says which model they will use, works as root and on a
    machine without a browser."""
    from .lab import run_lab

    return run_lab(port=args.port, extra=args.jupyter_args)


def _add_lab_command(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("lab", help=_lab.__doc__, description=_lab.__doc__)
    cmd.add_argument("--port", type=int, default=None,
                     help="port to serve on (default: the first free from 8888)")
    cmd.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="passed on to `jupyter lab`")
    cmd.set_defaults(func=_lab)


def _translations(args: argparse.Namespace) -> int:
    """Report which cells of the Chinese edition (notebooks/zh-CN/) are stale or untranslated;
    exit 1 if any."""
    from .translations import run

    return run(show=args.show, do_sync=args.sync, done=args.done)


def _add_translations_command(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("translations", help=_translations.__doc__,
                         description=_translations.__doc__)
    cmd.add_argument("--show", action="store_true",
                     help="print the English text of each cell to translate")
    cmd.add_argument("--sync", action="store_true",
                     help="copy the code cells, add placeholders for new Markdown cells, "
                          "drop cells English no longer has")
    cmd.add_argument("--done", nargs="+", metavar=("NOTEBOOK", "CELL"),
                     help="record these Markdown cells (English indices) as translated from the "
                          "current English")
    cmd.set_defaults(func=_translations)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m captum_course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in [("prefetch", _prefetch), ("photos", _photos)]:
        cmd = sub.add_parser(name, help=func.__doc__, description=func.__doc__)
        cmd.add_argument("--force", action="store_true", help="download again even if present")
        cmd.set_defaults(func=func)
    _add_course_commands(sub)
    _add_insights_command(sub)
    _add_lab_command(sub)
    _add_translations_command(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
