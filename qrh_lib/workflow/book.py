"""The book: the results page, MathJax for offline pages, and the Jupyter Book build of a run folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ..paths import BOOK_DIR
from .runs import DEFAULT_RUN_DIR, run_path

#: Version of MathJax copied into the book, fetched once from the npm registry and cached.
MATHJAX_VERSION = "3.2.2"
MATHJAX_CACHE = Path(os.environ.get("QRH_CACHE_DIR", Path.home() / ".cache" / "qrh-surrogate"))
#: Book sources copied next to a run folder that is not the book's own ``run/``.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "intro.md", "methods.md", "references.bib", "_static")


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
    from .report import write_results_page

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
