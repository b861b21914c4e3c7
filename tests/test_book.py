"""The book: its configuration, the results page generated from metrics files, and an offline build."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
import yaml

from qrh_lib import pipeline, report
from qrh_lib.config import BOOK_DIR
from qrh_lib.runs import read_metrics, write_metrics


def test_config_renders_without_executing_and_serves_mathjax_locally():
    cfg = yaml.safe_load((BOOK_DIR / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    path = cfg["sphinx"]["config"]["mathjax_path"]
    assert not re.match(r"https?://", path), "MathJax must come from the book itself"
    assert path == "mathjax/tex-mml-chtml.js"


def test_toc_lists_intro_methods_results_and_every_notebook():
    toc = yaml.safe_load((BOOK_DIR / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    assert toc["root"] == "intro"
    assert files == ["methods", "run/results", *(f"run/{nb}" for nb in pipeline.NOTEBOOKS)]


def test_results_page_shows_the_numbers_of_the_metrics_files(tmp_path):
    write_metrics(tmp_path, "05_evaluation", "Accuracy", {"rmse_pts": 0.123456, "n_surfaces": 12345})
    write_metrics(tmp_path, "06_buckets", "Buckets", {}, {"buckets": [{"bucket": "ATM", "rmse_pts": 0.5}]})
    (tmp_path / "run_info.json").write_text(json.dumps({"profile": "smoke"}))
    page = report.write_results_page(tmp_path).read_text()
    assert "| test RMSE (vol points) | 0.1235 | {doc}`05_evaluation` |" in page
    assert "12,345" in page and "| ATM | 0.5 |" in page
    assert "`smoke` profile" in page
    assert list(read_metrics(tmp_path)) == ["05_evaluation", "06_buckets"]


def test_results_page_without_metrics_says_so(tmp_path):
    assert "No metrics files" in report.write_results_page(tmp_path).read_text()


@pytest.mark.parametrize(
    ("x", "shown"),
    [(3, "3"), (123456, "123,456"), (0.5, "0.5"), (1.23456e-5, "1.235e-05"), (2.5e6, "2.500e+06"), (True, "True")],
)
def test_number_format(x, shown):
    assert report.fmt(x) == shown


def _stub_notebook(nb_name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {nb_name}\n\nMaths: $\\sigma = \\sqrt{{c}}$."),
        nbformat.v4.new_code_cell(
            "1 + 1",
            outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)],
            execution_count=1,
        ),
    ]
    return nb


def test_book_builds_offline_from_a_run_folder(tmp_path):
    """A run folder of executed notebooks (stubs here) builds with -W -n, with MathJax from _static."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for nb in pipeline.NOTEBOOKS:
        nbformat.write(_stub_notebook(nb), run_dir / f"{nb}.ipynb")
    write_metrics(run_dir, "05_evaluation", "Accuracy", {"rmse_pts": 0.25})
    html = pipeline.build_book(run_dir)
    assert html == tmp_path / "run_book" / "_build" / "html"
    intro = (html / "intro.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', intro)
    assert any(s.startswith("_static/mathjax/tex-mml-chtml.js") for s in scripts)
    assert not [s for s in scripts if re.match(r"(https?:)?//", s)], "no script is loaded from the network"
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert "0.25" in (html / "run" / "results.html").read_text()
