r"""Run the numbered notebooks with papermill into a run folder, then build the book.

Usage::

    python -m qrh_lib.workflow.pipeline run --profile cpu                 # into book/run, then the book
    python -m qrh_lib.workflow.pipeline run --profile smoke --run-dir /tmp/r
    python -m qrh_lib.workflow.pipeline book [--run-dir DIR]               # only rebuild the book

The pipeline is four modules: profiles (:mod:`qrh_lib.workflow.profiles`) give each notebook its checked
parameters; stamps (:mod:`qrh_lib.workflow.stamps`) decide which steps run again; executed notebooks are
cleaned for the book (:mod:`qrh_lib.workflow.executed`); and the book is built (:mod:`qrh_lib.workflow.book`).
This module runs the steps.

Every notebook also receives ``run_dir``: relative to the project root when the run folder is inside the
project (notebooks resolve it with :func:`qrh_lib.workflow.runs.run_path`), so the book and the step keys do not
depend on where the project lives; absolute otherwise.

A failing notebook stops the run; its executed copy, with the traceback, stays in the run folder. While a
notebook runs, the progress its library calls report (:mod:`qrh_lib.progress`) is drawn on the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import progress
from ..artifacts import save_json
from . import profiles
from .book import build_book
from .executed import clean_executed_notebook, project_relative
from .profiles import DEFAULT_PROFILE, load_profile
from .runs import DEFAULT_RUN_DIR, run_path
from .stamps import STAMPS, file_sha256, read_stamp, snapshot, stamp_is_current, stamp_path, step_key, write_stamp


@dataclass(frozen=True)
class StepResult:
    notebook: str
    status: str  # "ran", "reused" or "failed"
    seconds: float
    output: Path


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's file descriptor 2, and so the kernels' own stderr, to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _kernel_output(run_dir: Path, nb: str):
    """For the kernels started within: their stderr to ``<run_dir>/.stamps/<nb>.kernel.log``, their progress
    reports (:mod:`qrh_lib.progress`, through ``<run_dir>/.stamps/progress.json``) drawn as bars on this
    process's stderr as it was before (a duplicate of file descriptor 2 taken before the redirection)."""
    sys.stderr.flush()
    with (
        open(os.dup(2), "w") as terminal,
        progress.watch(run_dir / STAMPS / "progress.json", terminal),
        _stderr_to(run_dir / STAMPS / f"{nb}.kernel.log"),
    ):
        yield


def run_step(nb: str, params: dict, run_dir: Path, kernel_name: str = "python3") -> None:
    """Execute one notebook with papermill into ``run_dir/<nb>.ipynb`` (raises on a failing cell).

    The kernel's stderr goes to its log and its progress to the terminal (:func:`_kernel_output`); the
    executed copy, failed or not, is then cleaned by :func:`clean_executed_notebook`.
    """
    import papermill

    out = run_dir / f"{nb}.ipynb"
    try:
        with _kernel_output(run_dir, nb):
            papermill.execute_notebook(
                str(profiles.NOTEBOOKS_DIR / f"{nb}.ipynb"),
                str(out),
                parameters=params,
                kernel_name=kernel_name,
                cwd=str(run_dir),
                progress_bar=False,
                log_output=False,
            )
    finally:
        if out.exists():
            clean_executed_notebook(out)


def run(
    profile: str = DEFAULT_PROFILE,
    run_dir: str | os.PathLike | None = None,
    force: bool = False,
    book: bool = True,
    log=print,
) -> list[StepResult]:
    """Execute notebooks 01..10 with the profile's parameters into ``run_dir``, then build the book.

    Raises ``RuntimeError`` naming the failing notebook and its executed copy when a cell fails.
    """
    prof = load_profile(profile)
    run_dir = run_path(run_dir or DEFAULT_RUN_DIR).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STAMPS).mkdir(exist_ok=True)
    log(f"profile {prof['name']}: {prof['description']}".rstrip(": "))
    log(f"run folder {run_dir}")
    info = {
        "profile": prof["name"],
        "description": prof["description"],
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    save_json(run_dir / "run_info.json", info, indent=1)
    results, upstream, t_all = [], [], time.perf_counter()
    for i, nb in enumerate(profiles.NOTEBOOKS, 1):
        params = prof["params"][nb] | {"run_dir": project_relative(run_dir)}
        key = step_key(nb, params, upstream)
        stamp = read_stamp(run_dir, nb)
        head = f"[{i}/{len(profiles.NOTEBOOKS)}] {nb:<20}"
        if not force and stamp_is_current(run_dir, stamp, key):
            log(f"{head} reused (unchanged since {stamp['finished']}, took {stamp['seconds']:.1f} s then)")
            results.append(StepResult(nb, "reused", 0.0, run_dir / f"{nb}.ipynb"))
            upstream.append(stamp)
            continue
        log(f"{head} running ...")
        stamp_path(run_dir, nb).unlink(missing_ok=True)
        before, t0 = snapshot(run_dir), time.perf_counter()
        try:
            run_step(nb, params, run_dir)
        except Exception as err:
            seconds = time.perf_counter() - t0
            log(f"{head} FAILED after {seconds:.1f} s; executed copy with the traceback: {run_dir / nb}.ipynb")
            results.append(StepResult(nb, "failed", seconds, run_dir / f"{nb}.ipynb"))
            raise RuntimeError(f"notebook {nb} failed; see {run_dir / nb}.ipynb") from err
        seconds = time.perf_counter() - t0
        after = snapshot(run_dir)
        written = sorted(rel for rel, sig in after.items() if before.get(rel) != sig)
        stamp = {
            "notebook": nb,
            "key": key,
            "params": params,
            "outputs": {rel: file_sha256(run_dir / rel) for rel in written},
            "seconds": round(seconds, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_stamp(run_dir, stamp)
        upstream.append(stamp)
        results.append(StepResult(nb, "ran", seconds, run_dir / f"{nb}.ipynb"))
        log(f"{head} done in {seconds:.1f} s ({len(written)} files written)")
    log(f"notebooks finished in {time.perf_counter() - t_all:.1f} s")
    if book:
        t0 = time.perf_counter()
        html = build_book(run_dir, log=log)
        log(f"book built in {time.perf_counter() - t0:.1f} s: {html / 'index.html'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qrh_lib.workflow.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks 01..09 into a run folder, then build the book")
    p_run.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name in profiles/ or a YAML path")
    p_run.add_argument("--run-dir", default=None, help="run folder (default book/run)")
    p_run.add_argument("--force", action="store_true", help="recompute every step")
    p_run.add_argument("--no-book", action="store_true", help="skip the book build")
    p_book = sub.add_parser("book", help="build the book from a run folder")
    p_book.add_argument("--run-dir", default=None, help="run folder (default book/run)")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.profile, args.run_dir, force=args.force, book=not args.no_book)
        else:
            html = build_book(args.run_dir)
            print(f"book: {html / 'index.html'}")
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
