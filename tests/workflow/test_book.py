"""The book: its configuration, the results page generated from metrics files, and an offline build."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
import yaml

from qrh_lib.paths import BOOK_DIR, PROJ_ROOT
from qrh_lib.workflow import book, executed, profiles, report
from qrh_lib.workflow.runs import read_metrics, run_path, write_metrics


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
    assert files == ["methods", "run/results", *(f"run/{nb}" for nb in profiles.NOTEBOOKS)]


def test_results_page_shows_the_numbers_of_the_metrics_files(tmp_path):
    write_metrics(tmp_path, "05_evaluation", "Accuracy", {"rmse_pts": 0.123456, "n_surfaces": 12345})
    write_metrics(tmp_path, "06_buckets", "Buckets", {}, {"buckets": [{"bucket": "ATM", "rmse_pts": 0.5}]})
    (tmp_path / "run_info.json").write_text(json.dumps({"profile": "smoke"}))
    page = report.write_results_page(tmp_path).read_text()
    assert "| test RMSE against the noisy labels (vol points) | 0.123 | {doc}`05_evaluation` |" in page
    assert "12,345" in page and "| ATM | 0.5 |" in page
    assert "`smoke` profile" in page
    assert list(read_metrics(tmp_path)) == ["05_evaluation", "06_buckets"]


def test_results_page_without_metrics_says_so(tmp_path):
    assert "No metrics files" in report.write_results_page(tmp_path).read_text()


def test_results_page_sets_this_run_beside_the_published_anchors(tmp_path):
    write_metrics(tmp_path, "01_data_generation", "Data", {"n_train": 3276, "n_val": 410, "n_test": 410})
    write_metrics(
        tmp_path,
        "05_evaluation",
        "Accuracy",
        {"truth_mae_pts": 0.2345, "mae_pts": 0.31, "surfaces_per_second_batched": 589123.4},
    )
    page = report.write_results_page(tmp_path).read_text()
    section = page[page.index("## This run beside the published anchors") :]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in section.splitlines() if "|" in line}
    assert rows["training / validation / test surfaces"][:2] == ["3,276 / 410 / 410", "150,000 / 20,000 / 10,000"]
    assert rows["**error against the truth set: MAE (vol points)**"][0] == "0.234"
    assert rows["error against the noisy Monte Carlo test labels (secondary): MAE (vol points)"][:2] == [
        "0.31",
        "0.20–0.55",
    ]
    assert rows["surrogate surfaces per second, batched"][0] == "589,000"
    assert rows["calibration to one surface (median)"][0] == "n/a", "a missing key is shown, not fatal"
    assert rows["label noise: half-width of the 95% interval, 1.96 σ (vol points)"][0] == "n/a"
    assert "{cite:p}`rosenbaum2021deep`" in section and "{cite:p}`horvath2021deep`" in section


@pytest.mark.parametrize(
    ("x", "key", "shown"),
    [
        (5, "", "5"),
        (123456, "", "123,456"),
        (4096.0, "", "4,096"),
        (589000.0, "", "589,000"),
        (589123.4, "surfaces_per_second_batched", "589,000"),
        (2.5e6, "", "2,500,000"),
        (0.123456, "", "0.123"),
        (0.5, "", "0.5"),
        (12.345, "", "12.3"),
        (999.7, "", "1,000"),
        (1.23456e-5, "", "1.23e-05"),
        (0.412, "seconds_per_surface", "412 ms"),
        (31.24, "single_surface_latency_us", "31.2 µs"),
        (1234.0, "train_seconds", "20.6 min"),
        (0.834, "truth_relative_mae_pct", "0.834 %"),
        (None, "mae_pts", "n/a"),
        (True, "", "True"),
        ("a|b", "", "a\\|b"),
    ],
)
def test_number_format(x, key, shown):
    assert report.fmt(x, key) == shown


def test_run_dir_is_passed_relative_to_the_project_when_inside_it(tmp_path):
    assert executed.project_relative(PROJ_ROOT / "book" / "run") == "book/run"
    assert run_path(executed.project_relative(PROJ_ROOT / "book" / "run")) == PROJ_ROOT / "book" / "run"
    assert executed.project_relative(tmp_path / "run") == str((tmp_path / "run").resolve())


def _executed_copy(run_dir, root) -> nbformat.NotebookNode:
    """A notebook as papermill leaves it, with the absolute run folder and project root in it."""
    nb = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell(f'run_dir = "{run_dir}"\ntruth_dir = "{root}/data/truth"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    printed = nbformat.v4.new_code_cell(
        "print(paths)",
        outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=f"{run_dir}/metrics_05.json\n{root}\n"),
            nbformat.v4.new_output("execute_result", {"text/plain": f"PosixPath('{root}/notebooks')"}),
        ],
    )
    nb.cells = [injected, printed]
    nb.metadata["papermill"] = {
        "parameters": {"run_dir": str(run_dir), "seed": 0},
        "input_path": f"{root}/notebooks/05_evaluation.ipynb",
        "output_path": f"{run_dir}/05_evaluation.ipynb",
        "cwd": str(run_dir),
    }
    return nb


def test_executed_notebook_shows_no_absolute_path_of_the_project(tmp_path, monkeypatch):
    """A run folder inside the project: every path is written relative to the project root."""
    root = tmp_path / "project"
    run_dir = root / "book" / "run"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(executed, "PROJ_ROOT", root)
    path = run_dir / "05_evaluation.ipynb"
    nbformat.write(_executed_copy(run_dir, root), path)
    executed.clean_executed_notebook(path)
    text = path.read_text()
    assert str(tmp_path) not in text
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source == 'run_dir = "book/run"\ntruth_dir = "data/truth"\n'
    assert nb.cells[1].outputs[0]["text"] == "book/run/metrics_05.json\n.\n"
    assert nb.cells[1].outputs[1]["data"]["text/plain"] == "PosixPath('notebooks')"
    assert nb.metadata["papermill"]["input_path"] == "notebooks/05_evaluation.ipynb"
    assert nb.metadata["papermill"]["output_path"] == "book/run/05_evaluation.ipynb"
    assert nb.metadata["papermill"]["parameters"] == {"run_dir": "book/run", "seed": 0}


def test_executed_notebook_in_a_foreign_run_folder_stays_runnable_without_absolute_paths(tmp_path):
    """A run folder outside the project is shown relative to the project root, which run_path resolves back."""
    run_dir = (tmp_path / "run").resolve()
    run_dir.mkdir()
    path = run_dir / "05_evaluation.ipynb"
    nbformat.write(_executed_copy(run_dir, PROJ_ROOT), path)
    executed.clean_executed_notebook(path)
    text = path.read_text()
    for absolute in (str(run_dir), str(PROJ_ROOT)):
        assert not re.search(r"(?<![\w.-])" + re.escape(absolute), text), f"{absolute} is left absolute"
    params = nbformat.read(path, as_version=4).metadata["papermill"]["parameters"]
    assert not params["run_dir"].startswith("/") and run_path(params["run_dir"]).resolve() == run_dir
    executed.clean_executed_notebook(path)
    assert path.read_text() == text, "cleaning twice changes nothing"


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


@pytest.mark.slow
def test_book_builds_offline_from_a_run_folder(tmp_path):
    """A run folder of executed notebooks (stubs here) builds with -W -n, with MathJax from _static."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for nb in profiles.NOTEBOOKS:
        nbformat.write(_stub_notebook(nb), run_dir / f"{nb}.ipynb")
    write_metrics(run_dir, "05_evaluation", "Accuracy", {"rmse_pts": 0.25})
    html = book.build_book(run_dir)
    assert html == tmp_path / "run_book" / "_build" / "html"
    intro = (html / "intro.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', intro)
    assert any(s.startswith("_static/mathjax/tex-mml-chtml.js") for s in scripts)
    assert not [s for s in scripts if re.match(r"(https?:)?//", s)], "no script is loaded from the network"
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert "0.25" in (html / "run" / "results.html").read_text()
