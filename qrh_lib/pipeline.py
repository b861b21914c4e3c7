r"""Run the numbered notebooks with papermill into a run folder, then build the book.

Usage::

    python -m qrh_lib.pipeline run --profile cpu                 # into book/run, then the book
    python -m qrh_lib.pipeline run --profile smoke --run-dir /tmp/r
    python -m qrh_lib.pipeline book [--run-dir DIR]               # only rebuild the book

A profile is a YAML file in ``profiles/`` giving each notebook its parameters::

    description: one line
    common: {seed: 0}                      # passed to every notebook that declares them
    notebooks:
      01_data_generation: {n_samples: 200}

Every notebook also receives ``run_dir``: relative to the project root when the run folder is inside the
project (notebooks resolve it with :func:`qrh_lib.runs.run_path`), so the book and the step keys below do not
depend on where the project lives; absolute otherwise. Keys a notebook does not declare in its ``parameters``
cell are rejected with an error naming the notebook and the keys it accepts.

A step is reused when its key has not changed and the files it wrote are still there, unchanged:

.. math::

    \mathrm{key}_s = \mathrm{sha256}\bigl(\text{parameters}_s,\ \text{notebook source}_s,\
    \text{library source},\ \{\mathrm{key}_r, \text{hashes of the files } r \text{ wrote}\}_{r < s}\bigr)

so changing a parameter, editing a notebook or the library (qrh_lib) or touching an upstream artifact
recomputes that step and every later one (a dataset whose configuration and scheme are unchanged is then found
on disk, not priced again). The key and the files are kept in ``<run_dir>/.stamps/<notebook>.json``.
A failing notebook stops the run; its executed copy, with the traceback, stays in the run folder. While a
notebook runs, the progress its library calls report (:mod:`qrh_lib.progress`) is drawn on the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from qrh_lib import progress
from qrh_lib.config import BOOK_DIR, PROFILES_DIR, PROJ_ROOT
from qrh_lib.runs import run_path

NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
NOTEBOOKS = (
    "01_data_generation",
    "02_pca",
    "03_model",
    "04_training",
    "05_evaluation",
    "06_buckets",
    "07_residuals",
    "08_calibration",
)
DEFAULT_RUN_DIR = BOOK_DIR / "run"
DEFAULT_PROFILE = "cpu"
STAMPS = ".stamps"
#: Version of MathJax copied into the book, fetched once from the npm registry and cached.
MATHJAX_VERSION = "3.2.2"
MATHJAX_CACHE = Path(os.environ.get("QRH_CACHE_DIR", Path.home() / ".cache" / "qrh-surrogate"))
#: Book sources copied next to a run folder that is not the book's own ``run/``.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "intro.md", "methods.md", "references.bib", "_static")


# --------------------------------------------------------------------------------------------- profiles


def load_profile(name: str | os.PathLike) -> dict:
    """Read ``profiles/<name>.yaml`` (or a path) into ``{name, description, params: {notebook: dict}}``.

    Common parameters go to every notebook that declares them; per-notebook values override them.
    Unknown notebooks or parameters raise ``ValueError``.
    """
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no profile {str(name)!r} (looked for {path}); known profiles: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"description", "common", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: description, common, notebooks")
    per_nb = raw.get("notebooks") or {}
    bad = set(per_nb) - set(NOTEBOOKS)
    if bad:
        raise ValueError(f"{path}: unknown notebooks {sorted(bad)}; known: {list(NOTEBOOKS)}")
    common = raw.get("common") or {}
    params = {}
    for nb in NOTEBOOKS:
        declared = notebook_parameters(nb)
        extra = set(per_nb.get(nb) or {}) - set(declared)
        if extra:
            raise ValueError(f"{path}: {nb} has no parameters {sorted(extra)}; it accepts {sorted(declared)}")
        params[nb] = {k: v for k, v in common.items() if k in declared} | (per_nb.get(nb) or {})
    return {"name": path.stem, "description": raw.get("description", ""), "params": params}


def notebook_parameters(nb: str) -> dict:
    """Parameters declared in a notebook's ``parameters`` cell, as papermill reads them."""
    import papermill

    return papermill.inspect_notebook(str(NOTEBOOKS_DIR / f"{nb}.ipynb"))


# --------------------------------------------------------------------------------------------- stamps


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under the run folder, stamps excluded."""
    out = {}
    for p in run_dir.rglob("*"):
        if p.is_file() and STAMPS not in p.relative_to(run_dir).parts:
            st = p.stat()
            out[p.relative_to(run_dir).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def _notebook_source_sha(nb: str) -> str:
    """Hash of the notebook's cells' sources and types (outputs and metadata do not count)."""
    cells = json.loads((NOTEBOOKS_DIR / f"{nb}.ipynb").read_text())["cells"]
    text = json.dumps([(c["cell_type"], "".join(c["source"])) for c in cells])
    return hashlib.sha256(text.encode()).hexdigest()


def _library_source_sha() -> str:
    """Hash of the library's Python sources."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def step_key(nb: str, params: dict, upstream: list[dict]) -> str:
    """The key of a step: its parameters, its notebook's and the library's source and what upstream steps wrote."""
    payload = {
        "notebook": nb,
        "source": _notebook_source_sha(nb),
        "library": _library_source_sha(),
        "params": params,
        "upstream": [{"key": s["key"], "outputs": s["outputs"]} for s in upstream],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _stamp_path(run_dir: Path, nb: str) -> Path:
    return run_dir / STAMPS / f"{nb}.json"


def read_stamp(run_dir: Path, nb: str) -> dict | None:
    p = _stamp_path(run_dir, nb)
    return json.loads(p.read_text()) if p.exists() else None


def stamp_is_current(run_dir: Path, stamp: dict | None, key: str) -> bool:
    """True when the stamp has this key and every file it recorded is present and unchanged."""
    if stamp is None or stamp.get("key") != key:
        return False
    for rel, sha in stamp["outputs"].items():
        p = run_dir / rel
        if not p.is_file() or file_sha256(p) != sha:
            return False
    return True


# --------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class StepResult:
    notebook: str
    status: str  # "ran", "reused" or "failed"
    seconds: float
    output: Path


#: TensorFlow's C++ log lines (absl format, e.g. ``I0000 00:00:17.1 123 port.cc:153] oneDNN ...``) and the
#: line absl prints before them. They bypass TF_CPP_MIN_LOG_LEVEL and carry time stamps and thread ids.
TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] .*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)$"
)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _widget_text(state: dict, model_id: str) -> str:
    """Plain text of a widget's final state: HTML values and progress bars, children in order."""
    model = state.get(model_id, {})
    st, name = model.get("state", {}), model.get("model_name", "")
    if "children" in st:
        return "".join(_widget_text(state, c.removeprefix("IPY_MODEL_")) for c in st["children"])
    if name == "FloatProgressModel" or name == "IntProgressModel":
        done = round(20 * st.get("value", 0) / st["max"]) if st.get("max") else 0
        return "|" + "█" * done + " " * (20 - done) + "|"
    return html.unescape(str(st.get("value", ""))).replace("\u2007", " ")


def project_relative(path: Path) -> str:
    """``path`` relative to the project root when it lies inside the project (``"book/run"``), else absolute."""
    path = Path(path).resolve()
    return path.relative_to(PROJ_ROOT).as_posix() if path.is_relative_to(PROJ_ROOT) else str(path)


def _path_scrubber(run_dir: Path):
    """A function of a string that writes the absolute run folder and project root in it as relative paths.

    The project root becomes the project-relative path (``<root>/notebooks/x`` -> ``notebooks/x``, ``<root>``
    -> ``.``). A run folder outside the project becomes its path relative to the project root
    (``../../tmp/run``), which :func:`qrh_lib.runs.run_path` resolves back: the executed copy still runs.
    """
    run_dir = Path(run_dir).resolve()
    shown = {str(PROJ_ROOT): "."}
    if not run_dir.is_relative_to(PROJ_ROOT):
        shown[str(run_dir)] = Path(os.path.relpath(run_dir, PROJ_ROOT)).as_posix()
    alternatives = "|".join(re.escape(p) for p in sorted(shown, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.-])({alternatives})(?:(/)|(?![\w.-]))")

    def repl(m: re.Match) -> str:
        rel = shown[m.group(1)]
        if not m.group(2):
            return rel
        return "" if rel == "." else rel + "/"

    return lambda text: pattern.sub(repl, text)


def _scrub(node, scrub):
    """Apply ``scrub`` to every string in a notebook's JSON tree, binary (base64) outputs excepted."""
    if isinstance(node, str):
        return scrub(node)
    if isinstance(node, list):
        return [_scrub(v, scrub) for v in node]
    if isinstance(node, dict):
        for k, v in node.items():
            if not (k.startswith("image/") and k != "image/svg+xml"):
                node[k] = _scrub(v, scrub)
    return node


def clean_executed_notebook(path: Path) -> dict:
    """Make an executed notebook render offline, without noise and without this machine's paths; returns what
    was changed.

    - TensorFlow's C++ log lines are removed from stderr outputs (Python warnings and tracebacks stay).
    - Widget outputs (tqdm progress bars) become their final state as plain text, and the widget state is
      dropped: rendering widgets would load their JavaScript from a CDN.
    - Absolute paths of the run folder (the notebook's folder) and of the project root, in the injected
      parameters, papermill's metadata and the outputs, are written relative (see :func:`_path_scrubber`).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    _scrub(nb, _path_scrubber(Path(path).parent))
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = {"tf_log_lines": 0, "widgets": 0}
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = out["text"].splitlines(keepends=True)
                kept = [ln for ln in lines if not TF_LOG_LINE.match(ln.rstrip("\n"))]
                changed["tf_log_lines"] += len(lines) - len(kept)
                if not kept:
                    continue
                out["text"] = "".join(kept)
            elif WIDGET_VIEW in out.get("data", {}):
                text = _widget_text(state, out["data"][WIDGET_VIEW]["model_id"]) or out["data"].get("text/plain", "")
                out = nbformat.v4.new_output("stream", name="stdout", text=text + "\n")
                changed["widgets"] += 1
            outputs.append(out)
        if cell.cell_type == "code":
            cell.outputs = outputs
    nbformat.write(nb, path)
    return changed


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

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = run_dir / f"{nb}.ipynb"
    try:
        with _kernel_output(run_dir, nb):
            papermill.execute_notebook(
                str(NOTEBOOKS_DIR / f"{nb}.ipynb"),
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
    """Execute notebooks 01..08 with the profile's parameters into ``run_dir``, then build the book.

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
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=1) + "\n")
    results, upstream, t_all = [], [], time.perf_counter()
    for i, nb in enumerate(NOTEBOOKS, 1):
        params = prof["params"][nb] | {"run_dir": project_relative(run_dir)}
        key = step_key(nb, params, upstream)
        stamp = read_stamp(run_dir, nb)
        head = f"[{i}/{len(NOTEBOOKS)}] {nb:<20}"
        if not force and stamp_is_current(run_dir, stamp, key):
            log(f"{head} reused (unchanged since {stamp['finished']}, took {stamp['seconds']:.1f} s then)")
            results.append(StepResult(nb, "reused", 0.0, run_dir / f"{nb}.ipynb"))
            upstream.append(stamp)
            continue
        log(f"{head} running ...")
        _stamp_path(run_dir, nb).unlink(missing_ok=True)
        before, t0 = _snapshot(run_dir), time.perf_counter()
        try:
            run_step(nb, params, run_dir)
        except Exception as err:
            seconds = time.perf_counter() - t0
            log(f"{head} FAILED after {seconds:.1f} s; executed copy with the traceback: {run_dir / nb}.ipynb")
            results.append(StepResult(nb, "failed", seconds, run_dir / f"{nb}.ipynb"))
            raise RuntimeError(f"notebook {nb} failed; see {run_dir / nb}.ipynb") from err
        seconds = time.perf_counter() - t0
        after = _snapshot(run_dir)
        written = sorted(rel for rel, sig in after.items() if before.get(rel) != sig)
        stamp = {
            "notebook": nb,
            "key": key,
            "params": params,
            "outputs": {rel: file_sha256(run_dir / rel) for rel in written},
            "seconds": round(seconds, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        _stamp_path(run_dir, nb).write_text(json.dumps(stamp, indent=1))
        upstream.append(stamp)
        results.append(StepResult(nb, "ran", seconds, run_dir / f"{nb}.ipynb"))
        log(f"{head} done in {seconds:.1f} s ({len(written)} files written)")
    log(f"notebooks finished in {time.perf_counter() - t_all:.1f} s")
    if book:
        t0 = time.perf_counter()
        html = build_book(run_dir, log=log)
        log(f"book built in {time.perf_counter() - t0:.1f} s: {html / 'index.html'}")
    return results


# --------------------------------------------------------------------------------------------- the book


def fetch_mathjax(dest: Path, version: str = MATHJAX_VERSION, cache: Path = MATHJAX_CACHE) -> Path:
    """Copy MathJax's ``tex-mml-chtml.js`` and its fonts into ``dest`` (the book's ``_static/mathjax``).

    The package is fetched once with ``npm pack mathjax@<version>`` into ``cache``; later builds are
    offline.
    """
    tgz = cache / f"mathjax-{version}.tgz"
    if not tgz.exists():
        cache.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed once to fetch MathJax (apt-get install npm), or place " + str(tgz))
        subprocess.run(
            [npm, "pack", f"mathjax@{version}", "--silent"], cwd=cache, check=True, stdout=subprocess.DEVNULL
        )
    if (dest / "tex-mml-chtml.js").exists() and (dest / "VERSION").read_text().strip() == version:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    wanted = ("package/es5/tex-mml-chtml.js", "package/es5/output/chtml/fonts/woff-v2/")
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith(wanted):
                target = dest / Path(m.name).relative_to("package/es5")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
    (dest / "VERSION").write_text(version + "\n")
    return dest


def book_source(run_dir: Path) -> Path:
    """The folder the book is built from: ``book/`` itself, or a copy next to a foreign run folder.

    A run folder other than ``book/run`` gets a sibling ``<name>_book/`` holding the book's sources and a
    link ``run -> <run_dir>``, so tests build the book of their own run without touching ``book/``.
    """
    run_dir = run_dir.resolve()
    if run_dir == DEFAULT_RUN_DIR.resolve():
        return BOOK_DIR
    src = run_dir.with_name(run_dir.name + "_book")
    src.mkdir(exist_ok=True)
    for name in BOOK_SOURCES:
        s, d = BOOK_DIR / name, src / name
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("mathjax"))
        elif s.exists():
            shutil.copy2(s, d)
    link = src / "run"
    if not link.is_symlink():
        link.symlink_to(run_dir, target_is_directory=True)
    return src


def build_book(run_dir: str | os.PathLike | None = None, log=print) -> Path:
    """Write the results page, fetch MathJax, and build the book with ``-W -n --keep-going``.

    Returns the folder of the HTML (``<source>/_build/html``); raises ``RuntimeError`` on any warning.
    """
    from qrh_lib.report import write_results_page

    run_dir = run_path(run_dir or DEFAULT_RUN_DIR).resolve()
    write_results_page(run_dir)
    src = book_source(run_dir)
    fetch_mathjax(src / "_static" / "mathjax")
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", "-W", "-n", "--keep-going", str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log(proc.stdout[-6000:] + proc.stderr[-6000:])
        raise RuntimeError(f"book build failed ({' '.join(cmd)})")
    return src / "_build" / "html"


# --------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qrh_lib.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks 01..08 into a run folder, then build the book")
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
