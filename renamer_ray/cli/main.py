"""The `renamer-ray` commands: rename | apply | undo | config | submit | up | demo (their words: parser.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from renamer_ray.cli.parser import build_parser
from renamer_ray.cli.progress_bar import ProgressBar
from renamer_ray.cli.report import TABLE_ROWS, printable
from renamer_ray.config import ConfigError, config_files_line, load_settings
from renamer_ray.naming import IMAGE_EXTENSIONS, StyleError, TemplateError


def _rename(args: argparse.Namespace) -> int:
    from renamer_ray.local_ray import keep_local_ray_private

    keep_local_ray_private()  # before Ray is imported: a Ray of this run's own listens on loopback only
    from renamer_ray.pipeline.engines import NamerRef
    from renamer_ray.pipeline.run import RunOptions, run
    from renamer_ray.cli.report import print_summary
    from renamer_ray.workflow.inplace import move_as_planned

    overrides = {k: v for k, v in dict(model_id=args.model, batch_size=args.batch_size).items() if v is not None}
    settings = load_settings(**overrides)
    try:  # each flag overrides its NAME_* setting
        style = settings.naming_style.merged(case=args.case, max_chars=args.max_chars, max_words=args.max_words,
                                             language=args.language)
    except StyleError as exc:
        raise ConfigError(f"invalid naming style: {exc}") from None
    if args.in_place and (args.dst is not None or args.flat):
        raise ConfigError("--in-place renames the files where they are: give no DST and no --flat")
    options = RunOptions(source=args.src, target=args.dst or "renamed", user_prompt=args.prompt, style=style,
                         template=args.template or settings.name_template, dry_run=args.dry_run,
                         pool_size=args.workers, include=tuple(args.include), exclude=tuple(args.exclude),
                         namer=NamerRef() if args.namer_service else None, flat=args.flat, redo=args.redo,
                         manifest=args.manifest, in_place=args.in_place)
    bar = ProgressBar("named", sys.stderr)
    try:
        summary = run(options, settings, on_progress=lambda counts: bar.show(
            counts["named"], counts["listed"] or None, f"{counts['done']} renamed, {counts['failed']} failed"),
            announce=lambda text: print(text, file=sys.stderr))
    finally:
        bar.close()
    if args.in_place and not args.dry_run:  # the plan is written (the undo record): now the moves
        summary = move_as_planned(summary, settings)
    if summary.ok + summary.failed == 0:
        print(f"error: no images under {args.src} ({summary.skipped} other files; images are "
              f"{', '.join(sorted(IMAGE_EXTENSIONS))} by extension)", file=sys.stderr)
        return 2
    print_summary(summary, dry_run=args.dry_run)
    if args.in_place and not args.dry_run:
        print(f"to give every file its old name back: renamer-ray undo {printable(summary.manifest)}")
    return 0 if summary.failed == 0 else 1


def _undo(args: argparse.Namespace) -> int:
    from renamer_ray.workflow.apply import PlanError
    from renamer_ray.workflow.inplace import UndoError, undo

    try:
        summary = undo(args.manifest, load_settings())
    except (PlanError, UndoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary.refused[:TABLE_ROWS]:
        print(f"  LEFT AS IT IS: {printable(line)}")
    if len(summary.refused) > TABLE_ROWS:
        print(f"  … and {len(summary.refused) - TABLE_ROWS:,} more")
    if summary.root:  # the tree the run renamed: undo moves nothing outside it
        print(f"within {printable(summary.root)}")
    print(f"\n{summary.restored:,} given their old names back, {summary.already:,} had them already, "
          f"{len(summary.refused):,} left as they are, in {summary.seconds:.1f}s")
    return 0 if not summary.refused else 1


def _apply(args: argparse.Namespace) -> int:
    from renamer_ray.workflow.apply import PlanError, apply_plan
    from renamer_ray.cli.report import print_summary

    settings = load_settings()
    try:
        summary = apply_plan(args.manifest, args.dst, settings)
    except PlanError as exc:
        print(f"error: the plan was not applied, nothing was copied:\n{exc}", file=sys.stderr)
        return 2
    print_summary(summary, dry_run=False)
    return 0 if summary.failed == 0 else 1


def _config(args: argparse.Namespace) -> int:
    """Print every setting's effective value and where it came from (secrets masked)."""
    from renamer_ray.config import SECRETS, config_files, setting_sources

    settings, sources = load_settings(), setting_sources()
    rows = [(name.upper(), "***" if name in SECRETS and value else repr(value) if isinstance(value, str) else str(value),
             sources[name]) for name, value in settings.model_dump().items()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    print(f"# files read, lowest precedence first (flags > environment > files > defaults): "
          f"{', '.join(str(f) + ('' if f.is_file() else ' (none)') for f in config_files())}")
    for name, value, source in rows:
        print(f"{name:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    return 0


def _service_settings(args: argparse.Namespace):
    """Settings for the local stack: the toy model, port 8000 and the API on 127.0.0.1 unless the
    environment (or the user's config file) says otherwise."""
    from renamer_ray.config import setting_sources
    from renamer_ray.config import is_loopback

    given = {name for name, source in setting_sources().items() if source != "default"}
    overrides = {"model_id": args.model} if args.model else {}
    if "model_id" not in given:
        overrides.setdefault("model_id", "toy-shapes")
    if "api_port" not in given:
        overrides["api_port"] = 8000
    if "api_host" not in given:
        overrides["api_host"] = "127.0.0.1"
    settings = load_settings(**overrides)
    if is_loopback(settings.api_host):  # on one machine that nobody else reaches, receivers are usually local
        settings = settings.model_copy(update={name: True for name in ("callback_allow_private", "callback_allow_http")
                                               if name not in given})
    return settings


def _require_local_extra(needing: str, *modules: str) -> None:
    """The local stack's and the client's tools are an extra (`pip install .` on a GPU node pulls none)."""
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"{needing} needs {' and '.join(missing)}, which this install lacks: "
                          "pip install 'renamer-ray[local]' (`make demo` installs it)")


def _up(args: argparse.Namespace) -> int:
    from renamer_ray.service.local.up import up

    if not args.aws:
        _require_local_extra("the local stack", "moto")
    settings = _service_settings(args)
    return up(settings, workdir=Path(args.workdir), dashboard_port=args.dashboard_port, embedded=not args.aws,
              api_host=settings.api_host)


def _demo(args: argparse.Namespace) -> int:
    _require_local_extra("the local stack", "moto", "httpx", "httpx_sse")
    from renamer_ray.service.local.demo import demo

    return demo(_service_settings(args), Path(args.samples), workdir=Path(args.workdir),
                dashboard_port=args.dashboard_port)


def _submit(args: argparse.Namespace) -> int:
    _require_local_extra("talking to the service", "httpx", "httpx_sse")
    from renamer_ray.cli.client import Options, SubmitError, submit

    try:
        return submit(Options(args.dir, api=args.api, key=args.key, wait=args.wait, out=args.out,
                              max_files=args.max_files, prompt=args.prompt, template=args.template, case=args.case,
                              max_chars=args.max_chars, max_words=args.max_words, language=args.language))
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


COMMANDS = {"rename": _rename, "apply": _apply, "undo": _undo, "config": _config, "submit": _submit, "up": _up,
            "demo": _demo}


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on, said in one line (imported only once one happened: Ray is slow to load)."""
    from renamer_ray.workflow.apply import PlanError
    from renamer_ray.io.storage import LocationError
    from renamer_ray.model.checkpoint import ModelUnavailable
    from renamer_ray.pipeline.places import CannotStart
    from renamer_ray.pipeline.run import ProcessLost
    from renamer_ray.service.local.ports import PortInUse

    return ConfigError, TemplateError, CannotStart, LocationError, PlanError, ProcessLost, PortInUse, ModelUnavailable


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 some files failed (each with its reason in the manifest), 2 an expected
    error said in one line (nothing was renamed), 130 interrupted (run the same command again to resume)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        # Which settings files this command reads, once, before it does anything: a refused or broken
        # file is said instead (one line, exit 2), before any model is fetched or anything started.
        print(config_files_line(), file=sys.stderr, flush=True)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: names given so far are kept; run the same command again to finish", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except FileNotFoundError as exc:
        print(f"error: not found: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not isinstance(exc, _expected_errors()):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
