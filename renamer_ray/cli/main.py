"""`renamer-ray` command line: rename | apply | up | demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.resources import files
from pathlib import Path

from renamer_ray.config import ConfigError, config_files_line, load_settings
from renamer_ray.naming import CASES, IMAGE_EXTENSIONS, NamingStyle, StyleError, TemplateError
from renamer_ray.cli.progress_bar import ProgressBar
from renamer_ray.cli.report import TABLE_ROWS, printable

SAMPLES = Path(str(files("renamer_ray"))) / "data" / "samples"


def _rename(args: argparse.Namespace) -> int:
    from renamer_ray.local_ray import keep_local_ray_private

    keep_local_ray_private()  # before Ray is imported: a Ray of this run's own listens on loopback only
    from renamer_ray.pipeline.run import NamerRef, RunOptions, run
    from renamer_ray.cli.report import print_summary

    overrides = {k: v for k, v in dict(model_id=args.model, batch_size=args.batch_size).items() if v is not None}
    settings = load_settings(**overrides)
    wished = dict(case=args.case, max_chars=args.max_chars, max_words=args.max_words, language=args.language)
    try:  # each flag overrides its NAME_* setting
        style = NamingStyle.parse(**{**dict(settings.naming_style), **{k: v for k, v in wished.items() if v is not None}})
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


def _require_local_extra(*modules: str) -> None:
    """The local stack's tools are an extra (`pip install .` on a GPU node pulls neither)."""
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"the local stack needs {' and '.join(missing)}, which this install lacks: "
                          "pip install 'renamer-ray[local]' (`make demo` installs it)")


def _up(args: argparse.Namespace) -> int:
    from renamer_ray.service.local.stack import up

    if not args.aws:
        _require_local_extra("moto")
    settings = _service_settings(args)
    return up(settings, workdir=Path(args.workdir), dashboard_port=args.dashboard_port, embedded=not args.aws,
              api_host=settings.api_host)


def _demo(args: argparse.Namespace) -> int:
    _require_local_extra("moto", "httpx")
    from renamer_ray.service.local.demo import demo

    return demo(_service_settings(args), Path(args.samples), workdir=Path(args.workdir),
                dashboard_port=args.dashboard_port)


def _submit(args: argparse.Namespace) -> int:
    from renamer_ray.cli.client import Options, SubmitError, submit

    try:
        return submit(Options(args.dir, api=args.api, key=args.key, wait=args.wait, out=args.out,
                              max_files=args.max_files, prompt=args.prompt, template=args.template, case=args.case,
                              max_chars=args.max_chars, max_words=args.max_words, language=args.language))
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


EXAMPLES = """\
examples:
  renamer-ray rename ~/Pictures/2024 ~/Pictures/2024-named       copy every image under a new name
  renamer-ray rename s3://photos/raw s3://photos/named --dry-run  only write the plan (manifest.jsonl)
  renamer-ray rename in out --template '{date}-{subject}' --prompt 'the place and the main subject'
  renamer-ray apply out/manifest.jsonl final                      carry out a plan, perhaps edited by hand
  renamer-ray rename ~/Pictures/2024 --in-place                   rename where they are (undo record first)
  renamer-ray undo ~/Pictures/2024/.renamer-ray/manifest.jsonl    every old name back
  renamer-ray up                                                  the whole service on this machine
  renamer-ray submit ~/Pictures --api URL --out named             through a running service, folders kept
  renamer-ray config                                              the effective settings, and where from

exit status: 0 done; 1 some files failed (reasons in the manifest); 2 an error said in one line;
130 interrupted (run the same command again: names already given are kept)
"""


def _environment_help() -> str:
    import textwrap

    from renamer_ray.config import CONFIG_FILE, Settings

    names = ", ".join(name.upper() for name in Settings.model_fields)
    return textwrap.fill(f"environment variables (the same keys may be in {CONFIG_FILE}; flags > environment > "
                         f"file > defaults; the README's configuration table says what each means): {names}",
                         width=100)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="renamer-ray", description="Strict, meaningful image names from a VLM, on Ray.",
                                     epilog=EXAMPLES + "\n" + _environment_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('renamer-ray')}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    rename = sub.add_parser("rename", help="name every image under SRC and copy it into DST (originals untouched)")
    rename.add_argument("src", nargs="?", default=str(SAMPLES), help="folder or s3://bucket/prefix (default: bundled samples)")
    rename.add_argument("dst", nargs="?", help="output folder or s3:// prefix (default: ./renamed; none with --in-place)")
    rename.add_argument("--prompt", help="what the names should say, e.g. 'include date and primary subject'")
    rename.add_argument("--template", help="e.g. '{date}-{subject}'; fields: subject date camera original index")
    rename.add_argument("--case", choices=CASES, help="how names are written: kebab red-circle, snake red_circle, "
                        "camel redCircle, pascal RedCircle, title 'Red Circle', lower 'red circle' (default: NAME_CASE)")
    rename.add_argument("--max-chars", type=int, metavar="N", help="at most N characters per name, 1-120 (default: NAME_MAX_CHARS)")
    rename.add_argument("--max-words", type=int, metavar="N", help="at most N words per name, 1-20 (default: NAME_MAX_WORDS)")
    rename.add_argument("--language", help="names in this language, e.g. French or ja; non-Latin scripts are "
                        "transliterated to ASCII (default: NAME_LANGUAGE, else English)")
    rename.add_argument("--model", help="hub id, local checkpoint path, or toy-shapes (default: MODEL_ID)")
    rename.add_argument("--dry-run", action="store_true", help="write only DST/manifest.jsonl: the plan")
    rename.add_argument("--redo", action="store_true", help="name every image afresh, into a DST without a manifest "
                        "(default: a DST with a manifest keeps the names it records for unchanged files and names "
                        "only new and changed ones)")
    rename.add_argument("--manifest", metavar="PATH", help="where the manifest (the record of every name, and the "
                        "undo record of --in-place) is written and, on a re-run, read (default: DST/manifest.jsonl)")
    rename.add_argument("--in-place", action="store_true", help="rename the files where they are instead of copying "
                        "them; the manifest (default: SRC/.renamer-ray/manifest.jsonl) is written first and is the "
                        "undo record: `renamer-ray undo MANIFEST`")
    rename.add_argument("--flat", action="store_true", help="every image straight into DST (default: SRC's folders "
                        "are kept, SRC/a/b/x.jpg -> DST/a/b/<name>.jpg, names unique per folder)")
    rename.add_argument("--batch-size", type=int, help="images per model call (default: BATCH_SIZE)")
    rename.add_argument("--workers", type=int, help="model actors (default: one per GPU, else 1)")
    rename.add_argument("--namer-service", action="store_true",
                        help="name with the running service's warm namer deployment (on RAY_ADDRESS) "
                             "instead of starting model actors for this run")
    rename.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="only paths (relative to SRC) matching this glob; repeatable, e.g. '2024/*'")
    rename.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out paths matching this glob; repeatable, e.g. '*/thumbnails/*'")
    rename.set_defaults(func=_rename)

    apply = sub.add_parser("apply", help="carry out a plan (a manifest.jsonl, maybe edited by hand)")
    apply.add_argument("manifest", help="path or s3:// URI of a manifest.jsonl written by --dry-run")
    apply.add_argument("dst", help="output folder or s3:// prefix")
    apply.set_defaults(func=_apply)

    undo = sub.add_parser("undo", help="give the files a `rename --in-place` renamed their old names back "
                                         "(files changed since are listed and left as they are)")
    undo.add_argument("manifest", help="the run's manifest (default place: SRC/.renamer-ray/manifest.jsonl)")
    undo.set_defaults(func=_undo)

    config = sub.add_parser("config", help="print the effective settings and where each came from "
                                            "(flags > environment > renamer-ray.toml > defaults)")
    config.set_defaults(func=_config)

    submit = sub.add_parser("submit", help="send the images under DIR to a running service in jobs; --wait follows "
                            "them, --out downloads the renamed files into DIR/<folder>/<name>")
    submit.add_argument("dir", help="folder of images (subfolders included; each keeps its place in --out)")
    submit.add_argument("--api", default="http://127.0.0.1:8000", metavar="URL",
                        help="the service's address (default: %(default)s, where `renamer-ray up` listens)")
    submit.add_argument("--key", metavar="K", help="API key, where the service has API_KEYS (default: "
                        "the RENAMER_RAY_API_KEY environment variable)")
    submit.add_argument("--wait", action="store_true", help="follow the jobs with one progress bar until every "
                        "image is renamed (without it: print the job ids and exit)")
    submit.add_argument("--out", metavar="DIR", help="download the renamed files into DIR/<the source's folder>/"
                        "<new name> and write DIR/manifest.jsonl (implies --wait); never overwrites a file")
    submit.add_argument("--max-files", type=int, metavar="N", help="at most N images per job (default: "
                        "MAX_FILES_PER_JOB; the service's own limits always apply)")
    for action in rename._actions:  # the naming options exactly as `rename` takes them
        if action.dest in ("prompt", "template", "case", "max_chars", "max_words", "language"):
            submit.add_argument(*action.option_strings, choices=action.choices, type=action.type,
                                metavar=action.metavar, help=action.help)
    submit.set_defaults(func=_submit)

    for name, func, help_text in (
            ("up", _up, "start the whole service locally: embedded S3/SQS, Ray head + dashboard, Serve API, driver"),
            ("demo", _demo, "start the local stack, send the bundled samples through the HTTP API, print old -> new")):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--model", help="default: MODEL_ID if set, else toy-shapes")
        command.add_argument("--dashboard-port", type=int, default=8265)
        command.add_argument("--workdir", default=".renamer-ray", help="logs of the local stack")
        command.set_defaults(func=func)
    sub.choices["up"].add_argument("--aws", action="store_true",
                                   help="use real AWS (region, credentials, S3_*/SQS_* variables) instead of the embedded server")
    sub.choices["demo"].add_argument("samples", nargs="?", default=str(SAMPLES), help="folder of images to send")
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on, said in one line (imported only once one happened: Ray is slow to load)."""
    from renamer_ray.workflow.apply import PlanError
    from renamer_ray.io.storage import LocationError
    from renamer_ray.model.checkpoint import ModelUnavailable
    from renamer_ray.pipeline.run import CannotStart, ProcessLost
    from renamer_ray.service.local.stack import PortInUse

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
        return args.func(args)
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
