"""Command line: a thin skin over `replaygate.pipeline`. Parses flags, calls the library, writes
output, and maps errors to the exit codes of design.md (0 pass, 1 regression, 2 input, 3 incomplete).
Heavy modules are imported inside the commands so `replaygate --help` stays fast."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .errors import EXIT_INCOMPLETE, ReplaygateError
from .safetext import block, line

FORMATS = ["table", "json", "md", "junit", "html"]  # report.FORMATS, without importing it for --help


def _say(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Everything the CLI prints goes through here: model output, provider errors, case ids and
    names from traces inside it cannot forge a CI workflow command or a terminal escape."""
    click.echo(block(text), err=err, nl=nl)


def _error_text(e: Exception) -> str:
    """An error message may quote a provider's answer or a dataset: one line, except a config's
    list of problems (one line each)."""
    if getattr(e, "problems", None):
        return "\n".join(line(part) for part in str(e).split("\n"))
    return line(str(e))


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReplaygateError as e:
            _say(f"replaygate: error: {_error_text(e)}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            _say("replaygate: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
            sys.exit(141)  # 128 + SIGPIPE, as a shell reports a process the pipe ended
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as e:  # a bug in replaygate: short message, traceback only with -v
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            _say(f"replaygate: internal error: {type(e).__name__}: {line(e)} (rerun with -v for details)",
                 err=True)
            sys.exit(EXIT_INCOMPLETE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replaygate")
@click.option("-v", "--verbose", is_flag=True, help="More output; tracebacks on internal errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the verdict.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """replaygate: the regression gate for LLM applications.

    Replays traces or a golden set against a candidate, scores every answer, compares it with
    a baseline using paired statistics, and exits 1 when a gate says the candidate regressed.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(verbose=verbose, quiet=quiet)


def _config_option(f):
    return click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                        default="replaygate.yaml", show_default=True, help="Config file.")(f)


class _Workers(click.ParamType):
    """``--workers N`` (1-64) or ``--workers auto``."""
    name = "workers"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).strip().lower() != "auto":
            return click.IntRange(1, 64).convert(value, param, ctx)
        return "auto"


_WORKERS = _Workers()


def _run_options(f):
    f = click.option("--offline", is_flag=True, help="Serve only from the cache; a miss is an error (exit 3).")(f)
    f = click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")(f)
    f = click.option("--refresh", is_flag=True, help="Call the model again and overwrite cached responses.")(f)
    f = click.option("--concurrency", type=click.IntRange(1, 4096), help="Calls in flight (overrides the config).")(f)
    f = click.option("--workers", type=_WORKERS, metavar="N|auto",
                     help="Replay worker processes, or auto (overrides the config).")(f)
    f = click.option("--repeats", type=click.IntRange(1, 100), help="Samples per case (overrides the config).")(f)
    f = click.option("--seed", type=int, help="Seed for sampling and bootstrap (overrides the config).")(f)
    return f


def _batch_option(f):
    return click.option("--batch", "batch", is_flag=True,
                        help="Send the model calls through the provider's batch API (about half price, "
                             "answered within 24 h; no latency measured; a rerun resumes polling). "
                             "README: Batch mode.")(f)


def _settings(ctx, offline, no_cache, refresh, concurrency, workers, repeats, seed):
    from .pipeline import RunSettings

    chosen = [n for n, on in (("--offline", offline), ("--no-cache", no_cache), ("--refresh", refresh)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be used together")
    mode = "offline" if offline else "off" if no_cache else "refresh" if refresh else "rw"
    verbose = ctx.obj.get("verbose")
    progress = sys.stderr.isatty() and not ctx.obj.get("quiet") or bool(verbose)
    return RunSettings(cache_mode=mode, concurrency=concurrency, workers=workers, repeats=repeats,
                       progress=progress, seed=seed,
                       notice=lambda text: _say(f"warning: {line(text)}", err=True))


def _emit(text: str, output: str | None) -> None:
    if output:
        from .runfile import write_text

        write_text(text, output)  # atomic: never half a report, never a 0-byte one
    else:
        _say(text, nl=False)


_SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".xml": "junit",
                   ".json": "json", ".txt": "table"}


def _report_options(formats: list[str]):
    """--format/-o (repeatable, paired in order) and --md/--html/--junit/--json FILE: one
    invocation writes several reports."""
    def deco(f):
        f = click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the JSON report here.")(f)
        f = click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Also write the JUnit XML here.")(f)
        f = click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Also write the HTML report here.")(f)
        f = click.option("--md", "md_file", type=click.Path(dir_okay=False), help="Also write the Markdown report here.")(f)
        f = click.option("-o", "--output", "outputs", multiple=True, type=click.Path(dir_okay=False),
                         help="Write the report here instead of stdout; repeatable, the Nth -o takes the Nth "
                              "--format (without --format, the suffix picks it: .md .html .xml .json).")(f)
        f = click.option("--format", "fmts", multiple=True, type=click.Choice(formats),
                         help="Report format [default: table]; repeatable, paired with -o in order.")(f)
        return f
    return deco


def _targets(fmts, outputs, md=None, html=None, junit=None, json_file=None) -> list[tuple[str, str | None]]:
    """(format, file or None for stdout) for each report asked for. Formats without an -o go to
    stdout, at most one of them; with no format at all, the table goes to stdout."""
    fmts, outputs = list(fmts), list(outputs)
    if fmts:
        if len(outputs) > len(fmts):
            raise click.UsageError(f"{len(outputs)} -o/--output for {len(fmts)} --format: each -o needs its --format "
                                   "(or use --md/--html/--junit/--json FILE)")
        targets = [(f, outputs[i] if i < len(outputs) else None) for i, f in enumerate(fmts)]
    else:
        targets = [(_SUFFIX_FORMATS.get(Path(o).suffix.lower(), "table"), o) for o in outputs]
    targets += [(f, path) for f, path in (("md", md), ("html", html), ("junit", junit), ("json", json_file)) if path]
    if sum(1 for _, o in targets if o is None) > 1:
        raise click.UsageError("only one report can go to stdout: give the other --format an -o FILE")
    files = [str(Path(o).resolve()) for _, o in targets if o is not None]
    dup = next((o for o in files if files.count(o) > 1), None)
    if dup:
        raise click.UsageError(f"{dup} is named for two reports")
    return targets or [("table", None)]


def _write_reports(ctx, doc: dict, targets, **opts) -> None:
    """Render and write every asked-for report. A comparison's verdict line always reaches the
    log: on stdout inside the table, else on stderr (even with -q)."""
    from .report import kind_of, render

    for fmt, path in targets:
        _emit(render(doc, fmt, **opts), path)
        if path and not ctx.obj.get("quiet"):
            _say(f"wrote {path} ({fmt})", err=True)
    if kind_of(doc) == "comparison" and ("table", None) not in targets:
        from .report.terminal import verdict_line

        _say(verdict_line(doc), err=True)


def _step_summary(doc: dict) -> None:
    """Append the Markdown report to the GitHub Actions job summary when running there."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    from .report import render

    try:
        with open(target, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(render(doc, "md"))
    except OSError as e:  # the reports are written and the verdict stands: say it, go on
        from .fileio import io_error

        _say(f"warning: {_error_text(io_error(e, target, 'the step summary'))}", err=True)


@cli.command()
@click.option("-o", "--output", default="replaygate.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(output: str, force: bool) -> None:
    """Write a commented starter config, a 30-row example golden set and a .gitignore."""
    from .fileio import write_atomic
    from .starter import STARTER_CONFIG, STARTER_GITIGNORE, STARTER_GOLDEN

    path = Path(output)
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; use --force to overwrite")
    write_atomic(path, STARTER_CONFIG, what="config")
    wrote = [str(path)]
    golden = path.parent / "golden.jsonl"
    if not golden.exists():  # an existing dataset is never overwritten
        write_atomic(golden, STARTER_GOLDEN, what="golden file")
        wrote.append(f"{golden} (30 cases)")
    ignore = path.parent / ".gitignore"
    have = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    missing = [ln for ln in STARTER_GITIGNORE.splitlines() if ln.startswith("#") or ln not in have]
    if any(not ln.startswith("#") for ln in missing):  # add only what is not ignored yet
        with ignore.open("a", encoding="utf-8") as fh:
            fh.write(("\n" if have and have[-1].strip() else "") + "\n".join(missing) + "\n")
        wrote.append(f"{ignore} ({'added to' if have else 'new'}: {', '.join(ln for ln in missing if not ln.startswith('#'))})")
    _say("wrote " + ", ".join(wrote))
    _say(f"next: replaygate validate -c {path}")


@cli.command()
@_config_option
def validate(config_path: str) -> None:
    """Check a config in one pass: schema, files, scorers, git refs, golden rows (every problem
    with file, line and field), and warn about gates the dataset is too small to decide."""
    from .config import ConfigProblems
    from .validation import validate_config

    result = validate_config(config_path)
    for w in result.warnings:
        _say(f"warning: {line(w)}", err=True)
    if result.problems:
        cfg_file = str(result.cfg.path) if result.cfg else None  # the config's own problems first
        problems = sorted(result.problems, key=lambda p: (p.file != cfg_file, str(p.file or ""), p.line or 0))
        raise ConfigProblems(problems)
    cfg = result.cfg
    n = len(cfg["variants"])
    _say(f"{config_path}: valid ({n} variants, {len(cfg['scorers'])} scorers, {len(cfg['gates'])} gates, "
         f"{result.n_cases} cases)")


@cli.command("import")
@click.argument("traces", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="cases.jsonl to write.")
@click.option("--where", "where_json", help='Filter as JSON, e.g. \'{"operation": "chat", "model": "gpt-4o-mini"}\'.')
@click.option("--sample", "sample_n", type=click.IntRange(1), help="Keep a seeded sample of N cases (stratified by model).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--include-errors", is_flag=True, help="Keep calls whose span has error status.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes that decode and extract [default: the usable cores, for inputs over 16 MB; else 1].")
@click.option("--refs-dir", type=click.Path(exists=True, file_okay=False),
              help="Read content stored by reference (gen_ai.*_ref, the upload hook's files) from under this folder.")
@click.option("--keep-nested-duplicates", is_flag=True,
              help="Keep both cases when two nested spans of a trace record the same call "
                   "(e.g. a framework span around a client span); by default the inner one is kept.")
@click.pass_context
def import_cmd(ctx, traces, output, where_json, sample_n, seed, include_errors, workers, refs_dir,
               keep_nested_duplicates):
    """Read OTLP trace (and log) files or folders; write replayable cases as JSONL."""
    import json

    from .errors import InputError
    from .sources.parallel import import_to_jsonl
    from .sources.traces import read_cases_jsonl, sample_cases, write_cases_jsonl

    where = None
    if where_json:
        try:
            where = json.loads(where_json)
        except json.JSONDecodeError as e:
            raise InputError(f"--where is not JSON: {e.msg}") from None
    if sample_n:  # sampling needs the matching cases in hand: import them beside, then sample
        import tempfile

        with tempfile.TemporaryDirectory(prefix="replaygate-import-") as d:
            every = Path(d) / "cases.jsonl"
            stats, _ = import_to_jsonl(list(traces), every, where=where, include_errors=include_errors,
                                       workers=workers, refs_dir=refs_dir,
                                       keep_nested_duplicates=keep_nested_duplicates)
            n = write_cases_jsonl(sample_cases(read_cases_jsonl(every), sample_n, seed), output)
    else:  # streamed, in worker processes: memory does not grow with the number of cases
        stats, n = import_to_jsonl(list(traces), output, where=where, include_errors=include_errors,
                                   workers=workers, refs_dir=refs_dir,
                                   keep_nested_duplicates=keep_nested_duplicates)
    if where or sample_n:
        stats.written = n
    if not ctx.obj.get("quiet"):
        _say(stats.render())
        if where or sample_n:
            _say(f"kept after --where/--sample: {n} of {stats.cases}")
    _say(f"wrote {n} cases to {output}", err=True)
    if n == 0:
        raise InputError("no replayable LLM call found (see the table for what was skipped and why)",
                         file=", ".join(traces))


@cli.command()
@click.option("--listen", default="127.0.0.1:4318", show_default=True, help="HOST:PORT to listen on.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="OTLP/JSON lines file to append to.")
@click.pass_context
def record(ctx, listen, output):
    """OTLP/HTTP receiver: point OTEL_EXPORTER_OTLP_ENDPOINT at it and record traces
    (Ctrl-C or SIGTERM stops and prints what was recorded)."""
    import signal
    import threading
    import time

    from .errors import InputError
    from .sources.receiver import serve

    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(f"--listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    quiet = ctx.obj.get("quiet")
    tty = sys.stderr.isatty()
    shown = {"at": 0.0}

    def ready(h, p):
        _say(f"recording OTLP/HTTP on http://{h}:{p} (POST /v1/traces, /v1/logs) -> {output}", err=True)
        _say(f"  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{h}:{p}", err=True)

    def on_change(counts) -> None:
        # a live counter: redrawn in place on a terminal, a line every 10 s in a CI log
        now = time.monotonic()
        if quiet or now - shown["at"] < (0.25 if tty else 10.0):
            return
        shown["at"] = now
        text = block(f"received {counts.summary()}")
        if tty:
            click.echo("\r" + text + "\x1b[K", err=True, nl=False)  # our own escapes only
        else:
            click.echo(text, err=True)

    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # stop like Ctrl-C
    try:
        counts = serve(host, int(port), output, ready=ready, stop=stop, on_change=on_change)
    except OSError as e:
        raise InputError(f"cannot listen on {listen}: {e.strerror or e}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if tty and shown["at"]:
        _say("", err=True)
    _say(f"stopped: {counts.summary()} -> {output}", err=True)


@cli.command("run")
@_config_option
@click.option("--variant", required=True, help="Name of the variant to run.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Run JSON to write.")
@_run_options
@_batch_option
@click.pass_context
def run_cmd(ctx, config_path, variant, output, offline, no_cache, refresh, concurrency, workers, repeats, seed,
            batch):
    """Replay one variant, score it and write the run JSON (exit 0 when every case was replayed)."""
    from .config import load_config
    from .errors import RunIncomplete
    from .fileio import check_writable
    from .pipeline import run_variant
    from .runfile import write_json
    from .report import render

    cfg = load_config(config_path)
    settings = _settings(ctx, offline, no_cache, refresh, concurrency, workers, repeats, seed)
    settings.batch = batch
    check_writable(output, what="run file")  # before any paid call
    try:
        run = run_variant(cfg, variant, settings)
    except RunIncomplete as e:
        partial = getattr(e, "runs", None)
        if partial:
            _save_partial(lambda: write_json(partial[0].to_dict(), output), f"partial run written to {output}")
        raise
    write_json(run.to_dict(), output)  # the run file first: history is bookkeeping on top of it
    if not ctx.obj.get("quiet"):
        _say(render(run.to_dict(), "table"), nl=False)
    _say(f"wrote {output}", err=True)
    if cfg.data.get("history") and run.complete:
        _record_history(cfg.data["history"], [run], None, kept=output)
    if not run.complete:  # every case replayed, but a scorer could not score: not a measured run
        raise RunIncomplete("; ".join(run.incomplete_reasons) + f" ({output} has complete: false)")


def _save_partial(write, done: str) -> None:
    """Write what an incomplete run produced; a failure to do so is reported beside the run's
    own error (which the caller raises), never instead of it."""
    try:
        write()
    except ReplaygateError as w:
        _say(f"replaygate: error: {_error_text(w)}", err=True)
    else:
        _say(f"replaygate: {done} (complete: false)", err=True)


def _record_history(db: str, runs: list, comparison: dict | None, kept: str) -> None:
    """Record runs (and a verdict) after everything else is written; a failure says what was
    kept and exits with the history error's code (3 for a full disk, 2 for a bad database)."""
    from .history import record

    try:
        record(db, [r.to_dict() for r in runs], comparison)
    except ReplaygateError as e:
        e.message += f" (not recorded in the history; kept: {kept})"
        raise


@cli.command()
@click.argument("baseline", type=click.Path(dir_okay=False))
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="Config with gates and decision (optional).")
@_report_options(FORMATS)
@click.option("--seed", type=int, default=None, help="Bootstrap seed.")
@click.pass_context
def compare(ctx, baseline, candidate, config_path, fmts, outputs, md_file, html_file, junit_file, json_file, seed):
    """Diff two run files, apply the config's gates; exit 1 when a gate fails."""
    from .config import load_config
    from .pipeline import compare as do_compare
    from .runfile import load_run

    targets = _targets(fmts, outputs, md_file, html_file, junit_file, json_file)
    cfg = load_config(config_path, check_files=False) if config_path else None
    base, cand = load_run(baseline), load_run(candidate)
    doc = do_compare(base, cand, cfg, seed=seed if seed is not None else (cfg["seed"] if cfg else 0))
    _write_reports(ctx, doc, targets)
    _step_summary(doc)
    sys.exit(doc["exit_code"])


def _default_base() -> str:
    """The branch a pull request targets in GitHub Actions, else main (origin/main when there is
    no local main)."""
    target = os.environ.get("GITHUB_BASE_REF")
    return f"origin/{target}" if target else "main"


def _comment_key(config_path: str | None) -> str:
    """One comment per config: the marker names the config's path from the repository root."""
    if not config_path:
        return "gate"
    from .vcs import repo_path_of

    return "gate:" + repo_path_of(config_path)


def _publish(doc: dict, key: str, report_url: str | None, issue_title: str | None = None,
             pr_number: int | None = None) -> None:
    from .github import publish
    from .report import render

    _, lines = publish(render(doc, "md", report_url=report_url), key=key, report_url=report_url,
                       issue_title=issue_title, pr_number=pr_number)
    for text in lines:  # workflow commands are ours, built escaped by github.workflow_command
        click.echo(text) if text.startswith("::") else _say(text, err=True)


def _annotate(doc: dict, cfg) -> None:
    """Workflow annotations for failed and undecided gates, at the gate's line in the config."""
    from .config import line_of
    from .github import annotations

    workspace = os.environ.get("GITHUB_WORKSPACE") or os.getcwd()
    rel = os.path.relpath(cfg.path, workspace) if cfg else None
    lines = [line_of(cfg.lines, ("gates", i)) for i in range(len(doc.get("gates") or []))] if cfg else None
    for a in annotations(doc, rel, lines):
        click.echo(a)  # built escaped by github.workflow_command; _say would defuse the command itself


def _fail_on(doc: dict, fail_on: str) -> int:
    """The exit code, stricter with --fail-on undecided: an inconclusive gate fails too."""
    code = doc["exit_code"]
    if code == 0 and fail_on == "undecided" and any(g.get("verdict") == "inconclusive" for g in doc.get("gates") or []):
        _say("replaygate: --fail-on undecided: a gate could not decide (too few cases); exit 1", err=True)
        return 1
    return code


@cli.command()
@_config_option
@_report_options(FORMATS)
@click.option("--save-runs", type=click.Path(file_okay=False), help="Also write baseline.json and candidate.json here.")
@click.option("--refresh-baseline", is_flag=True,
              help="Call the baseline live (not from the cache) so latency compares like with like.")
@click.option("--baseline-ref", metavar="REF",
              help="Baseline: the candidate as it was at git REF (config, prompts and templates read at REF), "
                   "e.g. origin/main. The config's baseline variant is not used.")
@click.option("--changed-only", is_flag=True,
              help="Exit 0 at once when none of the config, its prompts, templates, datasets or scorer files "
                   "changed since --base.")
@click.option("--base", "base_ref", metavar="REF",
              help="What --changed-only compares with [default: --baseline-ref, else origin/$GITHUB_BASE_REF in "
                   "a pull request, else main].")
@click.option("--fail-on", type=click.Choice(["regression", "undecided"]), default="regression", show_default=True,
              help="undecided: also exit 1 when a gate is inconclusive (too few cases to tell).")
@click.option("--pr-comment", is_flag=True,
              help="Create or update this config's pull-request comment (GITHUB_TOKEN, GITHUB_REPOSITORY, "
                   "GITHUB_EVENT_PATH); without a write token, a notice instead.")
@click.option("--report-url", metavar="URL", help="Link to the full report in the comment.")
@click.option("--annotate", is_flag=True,
              help="Print GitHub workflow annotations (::error / ::warning) for failed and undecided gates.")
@_run_options
@_batch_option
@click.pass_context
def gate(ctx, config_path, fmts, outputs, md_file, html_file, junit_file, json_file, save_runs, refresh_baseline,
         baseline_ref, changed_only, base_ref, fail_on, pr_comment, report_url, annotate, offline, no_cache, refresh,
         concurrency, workers, repeats, seed, batch):
    """Run baseline and candidate, compare and gate (the CI command). Exit 0 pass, 1 regression,
    3 not (fully) measured."""
    from .config import load_config
    from .errors import InputError, RunIncomplete
    from .fileio import check_writable
    from .pipeline import gate as do_gate
    from .runfile import write_json

    targets = _targets(fmts, outputs, md_file, html_file, junit_file, json_file)
    cfg = load_config(config_path)
    if changed_only:
        from .changed import relevant_changes

        base = base_ref or baseline_ref or _default_base()
        try:
            changes = relevant_changes(cfg, base)
        except ValueError as e:
            raise InputError(f"--changed-only: {e}", file=config_path) from None
        if not changes.relevant:
            _say(f"replaygate: nothing the gate reads changed since {base} ({changes.merge_base[:10]}): "
                 "skipped, exit 0", err=True)
            sys.exit(0)
        shown = [os.path.relpath(p) for p in changes.changed[:5]] + changes.untraceable[:3]
        _say(f"replaygate: changed since {base}: {', '.join(shown)}", err=True)
    if baseline_ref:
        from .baseline_ref import config_with_baseline_at

        cfg, note = config_with_baseline_at(cfg, baseline_ref)
        _say(f"replaygate: {note}", err=True)
    settings = _settings(ctx, offline, no_cache, refresh, concurrency, workers, repeats, seed)
    if refresh_baseline and offline:
        raise click.UsageError("--refresh-baseline calls the baseline and --offline forbids calls")
    settings.refresh_baseline = refresh_baseline
    settings.batch = batch
    if batch and refresh_baseline:
        raise click.UsageError("--refresh-baseline times the baseline live and --batch measures no latency: "
                               "use one of them")
    for path, what in ([(o, "report") for _, o in targets] +
                       [(Path(save_runs) / f"{n}.json", "run file") for n in ("baseline", "candidate") if save_runs]):
        if path:
            check_writable(path, what=what)  # before any paid call

    def save(runs) -> None:
        for name, r in zip(("baseline", "candidate"), runs):
            write_json(r.to_dict(), Path(save_runs) / f"{name}.json")

    try:
        doc, base, cand = do_gate(cfg, settings)
    except RunIncomplete as e:
        if save_runs and getattr(e, "runs", None):
            _save_partial(lambda: save(e.runs), f"partial runs written to {save_runs}")
        raise
    if save_runs:
        save((base, cand))
    for w in sorted(set(base.warnings) | set(cand.warnings)):
        _say(f"warning: {line(w)}", err=True)
    _write_reports(ctx, doc, targets)
    _step_summary(doc)
    if cfg.data.get("history") and base.complete and cand.complete:  # last: reports and runs are kept
        kept = ", ".join([o or "the report above" for _, o in targets] + ([save_runs] if save_runs else []))
        _record_history(cfg.data["history"], [base, cand], doc, kept=kept)
    if annotate:
        _annotate(doc, cfg)
    if pr_comment:
        _publish(doc, _comment_key(config_path), report_url)
    sys.exit(_fail_on(doc, fail_on))


@cli.command()
@click.argument("comparison", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="The config that was gated: names the comment (one per config) and the annotations' file.")
@click.option("--report-url", metavar="URL", help="Link to the full report (e.g. the uploaded artifact).")
@click.option("--issue", "issue_title", metavar="TITLE",
              help="Open an issue with this title, or update the one a previous run opened, instead of commenting.")
@click.option("--pr", "pr_number", type=click.IntRange(1), help="Pull request number [default: from GITHUB_EVENT_PATH].")
@click.option("--key", help="Tells this comment apart from others replaygate posts [default: the config's path].")
@click.option("--annotate", is_flag=True, help="Also print workflow annotations for failed and undecided gates.")
@click.option("--print", "print_only", is_flag=True, help="Print the body instead of posting it.")
def comment(comparison, config_path, report_url, issue_title, pr_number, key, annotate, print_only):
    """Post a comparison (gate / compare --format json) as the one pull-request comment that later
    runs edit, or as an issue (--issue). Needs GITHUB_TOKEN and GITHUB_REPOSITORY; without a write
    token (a fork's pull request) it prints a notice and exits 0."""
    from .config import load_config
    from .errors import InputError
    from .runfile import read_json, validate_document

    doc = read_json(comparison)
    if not isinstance(doc, dict) or "verdict" not in doc:
        raise InputError("not a comparison file (write one with gate/compare --format json)", file=comparison)
    validate_document(doc, "comparison.schema.json", comparison)
    cfg = load_config(config_path, check_files=False) if config_path else None
    key = key or _comment_key(config_path)
    if annotate:
        _annotate(doc, cfg)
    if print_only:
        from .github import GitHubContext, comment_body
        from .report import render

        _say(comment_body(render(doc, "md", report_url=report_url), key, report_url, GitHubContext.from_env().run_url),
             nl=False)
        return
    _publish(doc, key, report_url, issue_title, pr_number)


@cli.command()
@_config_option
@click.option("--variant", help="Variant to calibrate (default: the config's baseline).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the result here instead of stdout.")
@_run_options
@click.pass_context
def calibrate(ctx, config_path, variant, fmt, output, offline, no_cache, refresh, concurrency, workers, repeats, seed):
    """A/A run: the baseline against itself. Measures noise (flip rate, score and latency spread)
    and recommends cases and repeats so each gate can detect its tolerance at 80% power."""
    from .compare.calibrate import render_calibration
    from .config import load_config
    from .pipeline import calibrate as do_calibrate
    from .runfile import dumps

    cfg = load_config(config_path)
    settings = _settings(ctx, offline, no_cache, refresh, concurrency, workers, repeats, seed)
    result, _ = do_calibrate(cfg, settings, variant)
    text = dumps(result) if fmt == "json" else render_calibration(result) + "\n"
    _emit(text, output)


@cli.command()
@click.argument("document", type=click.Path(dir_okay=False))
@_report_options(FORMATS + ["otlp"])
@click.option("--otlp-endpoint", metavar="URL",
              help="With --format otlp: send to this OTLP/HTTP endpoint (…/v1/traces, …/v1/logs) instead.")
@click.pass_context
def report(ctx, document, fmts, outputs, md_file, html_file, junit_file, json_file, otlp_endpoint):
    """Render a run or comparison JSON as table, md, junit, html or json (several at once with
    --md/--html/--junit/--json FILE); export a run as OTLP (--format otlp: its calls as GenAI
    spans, its scores as gen_ai.evaluation.result events, OTLP/JSON lines)."""
    from .errors import InputError, RunIncomplete
    from .report import kind_of
    from .runfile import read_json, validate_document

    targets = _targets(fmts, outputs, md_file, html_file, junit_file, json_file)
    doc = read_json(document)
    try:
        kind = kind_of(doc) if isinstance(doc, dict) else None
    except ValueError:
        kind = None
    if kind is None:
        raise InputError("neither a run nor a comparison file", file=document)
    validate_document(doc, f"{kind}.schema.json", document)
    otlp = [t for t in targets if t[0] == "otlp"]
    if otlp and kind != "run":
        raise InputError("--format otlp exports a run file; a comparison has no samples", file=document)
    if otlp_endpoint:
        if not otlp:
            raise InputError("--otlp-endpoint goes with --format otlp")
        from .report.otlp_export import post

        try:
            post(doc, otlp_endpoint)
        except Exception as e:  # network errors of every kind: the export did not happen
            raise RunIncomplete(f"OTLP export to {otlp_endpoint} failed: {type(e).__name__}: {e}") from None
        targets = [t for t in targets if t[0] != "otlp" or t[1] is not None]  # sent, not printed
    _write_reports(ctx, doc, targets)


@cli.command()
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="Config whose history: database to read (and whose gates --drift applies).")
@click.option("--db", type=click.Path(dir_okay=False), help="History database to read (instead of the config's).")
@click.option("--variant", help="Only this variant.")
@click.option("--metric", "metrics", multiple=True, help="Metric column (repeatable) [default: quality.pass_rate, "
              "latency.p95, cost.mean, errors.rate].")
@click.option("--last", type=click.IntRange(1), help="Only the last N runs.")
@click.option("--drift", is_flag=True, help="Compare each variant's last run with the one before it (paired by case, "
              "the config's gates); exit 1 when a gate fails.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed for --drift.")
def history(config_path, db, variant, metrics, last, drift, fmt, seed):
    """Trends of the stored runs; --drift: has a variant changed since its previous run?"""
    import json as _json

    from tabulate import tabulate

    from . import history as hist
    from .config import load_config
    from .errors import InputError

    cfg = load_config(config_path, check_files=False) if config_path else None
    db = db or (cfg.data.get("history") if cfg else None)
    if not db:
        raise InputError("no history database: give --db, or -c with a config that sets history:")
    if not drift:
        entries = hist.runs(db, variant, last)
        if fmt == "json":
            _say(_json.dumps(entries, indent=2))
        else:
            headers, rows = hist.trend_rows(entries, tuple(metrics) or hist.DEFAULT_METRICS)
            _say(tabulate(rows, headers=headers, disable_numparse=True) if rows else "no runs recorded yet")
        return
    from .model import Run
    from .pipeline import compare as do_compare
    from .report import render

    pairs = hist.latest_pairs(db, variant)
    if not pairs:
        raise InputError("--drift needs two runs of a variant in the history", file=str(db))
    worst = 0
    docs = []
    for before, after in pairs:
        base, cand = (Run.from_dict(hist.load_run(db, e["id"])) for e in (before, after))
        doc = do_compare(base, cand, cfg, seed=seed)
        worst = max(worst, doc["exit_code"])
        docs.append(doc)
        if fmt == "table":
            _say(f"== {after['variant']}: run {after['id']} ({after['time']}) against run {before['id']} "
                       f"({before['time']})")
            _say(render(doc, "table"), nl=False)
    if fmt == "json":
        _say(_json.dumps(docs, indent=2, default=str))
    sys.exit(worst)


def main() -> None:
    cli(prog_name="replaygate")


if __name__ == "__main__":  # pragma: no cover
    main()
