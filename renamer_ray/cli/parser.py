"""The `renamer-ray` command line's words: its commands, their arguments, help and examples (argparse)."""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

from renamer_ray.naming import CASES

SAMPLES = Path(str(files("renamer_ray"))) / "data" / "samples"


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
                         f"file > defaults; docs/configuration.md says what each means): {names}",
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

    apply = sub.add_parser("apply", help="carry out a plan (a manifest.jsonl, maybe edited by hand)")
    apply.add_argument("manifest", help="path or s3:// URI of a manifest.jsonl written by --dry-run")
    apply.add_argument("dst", help="output folder or s3:// prefix")

    undo = sub.add_parser("undo", help="give the files a `rename --in-place` renamed their old names back "
                                         "(files changed since are listed and left as they are)")
    undo.add_argument("manifest", help="the run's manifest (default place: SRC/.renamer-ray/manifest.jsonl)")

    config = sub.add_parser("config", help="print the effective settings and where each came from "
                                            "(flags > environment > renamer-ray.toml > defaults)")

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

    for name, help_text in (
            ("up", "start the whole service locally: embedded S3/SQS, Ray head + dashboard, Serve API, driver"),
            ("demo", "start the local stack, send the bundled samples through the HTTP API, print old -> new")):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--model", help="default: MODEL_ID if set, else toy-shapes")
        command.add_argument("--dashboard-port", type=int, default=8265)
        command.add_argument("--workdir", default=".renamer-ray", help="logs of the local stack")
    sub.choices["up"].add_argument("--aws", action="store_true",
                                   help="use real AWS (region, credentials, S3_*/SQS_* variables) instead of the embedded server")
    sub.choices["demo"].add_argument("samples", nargs="?", default=str(SAMPLES), help="folder of images to send")
    return parser
