"""The notebooks: committed clean and well-formed, the pipeline's reuse and failure rules, and the whole
smoke chain run with papermill, re-executed with nbval, and rendered as a book with warnings as errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from qrh_lib.workflow import book, executed, pipeline, profiles, stamps

NOTEBOOK_FILES = [profiles.NOTEBOOKS_DIR / f"{nb}.ipynb" for nb in profiles.NOTEBOOKS]
PARAM_LINE = re.compile(r"^\w+: [\w\[\], ]+ = \S.*  # \S.*$")


# ----------------------------------------------------------------------------------- committed notebooks


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_committed_notebook_is_stripped_and_follows_the_template(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} carries outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "## Overview" in nb.cells[0].source
    h1 = [c for c in nb.cells if c.cell_type == "markdown" and re.search(r"^# ", c.source, re.M)]
    assert len(h1) == 1, "one H1 title"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one cell tagged parameters"
    lines = [ln for ln in params[0].source.splitlines() if ln.strip()]
    bad = [ln for ln in lines if not PARAM_LINE.match(ln)]
    assert not bad, f"parameters must be annotated literals with a comment: {bad}"
    names = {ln.split(":")[0] for ln in lines}
    assert {"run_dir", "seed"} <= names
    # papermill skips a line it cannot parse (e.g. a second "=" in the comment): then a profile cannot set it
    assert set(profiles.notebook_parameters(path.stem)) == names
    assert code.index(params[0]) == 1, "the imports cell, then the parameters cell"
    # TensorFlow's log level is set once, by importing qrh_lib (qrh_lib/__init__.py), not in each notebook
    assert "TF_CPP_MIN_LOG_LEVEL" not in "".join(c.source for c in code)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in text and "## References" in text


def _notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for tag, src in cells:
        cell = nbformat.v4.new_code_cell(textwrap.dedent(src))
        if tag:
            cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    return nb


@pytest.fixture
def toy_pipeline(tmp_path, monkeypatch):
    """Three tiny notebooks (the second fails when told to) standing in for 01..08."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    params = 'run_dir: str = "x"  # run folder\nvalue: int = 1  # a number\nfail: bool = False  # raise?\n'
    body = """
        from pathlib import Path
        if fail:
            raise RuntimeError("told to fail")
        Path(run_dir, "{name}.txt").write_text(str(value))
    """
    for name in ("a", "b", "c"):
        cells = [("", "import pathlib"), ("parameters", params), ("", body.replace("{name}", name))]
        nbformat.write(_notebook(cells), nb_dir / f"{name}.ipynb")
    monkeypatch.setattr(profiles, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(profiles, "NOTEBOOKS", ("a", "b", "c"))

    def profile(**b_params):
        p = tmp_path / "toy.yaml"
        p.write_text(json.dumps({"description": "toy", "notebooks": {"b": b_params}}))
        return p

    return profile, tmp_path / "run"


def test_pipeline_reuses_unchanged_steps_and_reruns_changed_ones(toy_pipeline):
    profile, run_dir = toy_pipeline
    first = pipeline.run(profile(value=2), run_dir, book=False, log=lambda *_: None)
    assert [r.status for r in first] == ["ran", "ran", "ran"]
    assert (run_dir / "b.txt").read_text() == "2"
    again = pipeline.run(profile(value=2), run_dir, book=False, log=lambda *_: None)
    assert [r.status for r in again] == ["reused", "reused", "reused"]
    changed = pipeline.run(profile(value=3), run_dir, book=False, log=lambda *_: None)
    assert [r.status for r in changed] == ["reused", "ran", "ran"], "a change reruns that step and all later"
    (run_dir / "a.txt").write_text("tampered")
    tampered = pipeline.run(profile(value=3), run_dir, book=False, log=lambda *_: None)
    assert [r.status for r in tampered] == ["ran", "ran", "ran"], "a changed artifact invalidates its step"


def test_failing_notebook_stops_the_run_and_keeps_its_traceback(toy_pipeline):
    profile, run_dir = toy_pipeline
    with pytest.raises(RuntimeError, match="notebook b failed"):
        pipeline.run(profile(fail=True), run_dir, book=False, log=lambda *_: None)
    executed = nbformat.read(run_dir / "b.ipynb", as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and "told to fail" in errors[0]["evalue"]
    assert not (run_dir / "c.ipynb").exists(), "the run stops at the failing step"
    assert stamps.read_stamp(run_dir, "b") is None, "a failed step leaves no stamp"


def test_tensorflow_log_lines_are_stripped_but_warnings_stay(tmp_path):
    nb = _notebook([("", "print(1)")])
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stderr",
            text="WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1795643591.445494    8992 port.cc:153] oneDNN custom operations are on.\n"
            "UserWarning: keep me\n",
        )
    ]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert executed.clean_executed_notebook(path) == {"tf_log_lines": 2, "widgets": 0}
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == "UserWarning: keep me\n"


def test_progress_bar_widgets_become_their_final_text(tmp_path):
    """A tqdm widget would make the book load JavaScript from a CDN: it is flattened to text."""
    nb = _notebook([("", "bar()")])
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", {executed.WIDGET_VIEW: view, "text/plain": "0%"})]
    models = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_d", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "d": {"model_name": "HTMLModel", "state": {"value": "pricing:\u2007100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 8.0, "max": 8.0}},
        "r": {"model_name": "HTMLModel", "state": {"value": "\u20078/8 [00:01&lt;00:00]"}},
    }
    nb.metadata["widgets"] = {executed.WIDGET_STATE: {"state": models}}
    path = tmp_path / "w.ipynb"
    nbformat.write(nb, path)
    assert executed.clean_executed_notebook(path)["widgets"] == 1
    cleaned = nbformat.read(path, as_version=4)
    assert "widgets" not in cleaned.metadata
    assert cleaned.cells[0].outputs[0]["text"] == "pricing: 100%|" + "█" * 20 + "| 8/8 [00:01<00:00]\n"


# ----------------------------------------------------------------------------------- the smoke chain


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke profile executed by the pipeline into a temporary run folder (no book yet)."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    results = pipeline.run("smoke", run_dir, book=False)
    return run_dir, results


@pytest.mark.slow
def test_smoke_chain_runs_every_notebook_and_writes_its_metrics(smoke_run):
    run_dir, results = smoke_run
    assert [r.notebook for r in results] == list(profiles.NOTEBOOKS)
    assert all(r.status == "ran" for r in results)
    for nb in profiles.NOTEBOOKS:
        metrics = json.loads((run_dir / f"metrics_{nb}.json").read_text())
        assert metrics["step"] == nb and metrics["scalars"]
        assert stamps.read_stamp(run_dir, nb)["outputs"]
    assert (run_dir / "surrogate" / "model.keras").exists() and (run_dir / "vix_surrogate" / "model.keras").exists()
    dataset = Path(json.loads((run_dir / "dataset.json").read_text())["path"])
    assert dataset.is_relative_to(run_dir), "the smoke profile keeps its dataset inside the run folder"


@pytest.mark.slow
def test_smoke_chain_second_run_reuses_every_step(smoke_run):
    run_dir, _ = smoke_run
    again = pipeline.run("smoke", run_dir, book=False)
    assert [r.status for r in again] == ["reused"] * len(profiles.NOTEBOOKS)


@pytest.mark.slow
def test_executed_notebooks_reproduce_their_checked_outputs_under_nbval(smoke_run):
    """Re-execute every executed notebook; cells marked NBVAL_CHECK_OUTPUT must give the same output."""
    run_dir, _ = smoke_run
    ini = run_dir.parent / "nbval.ini"
    ini.write_text("[pytest]\n")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(ini),
        "--rootdir",
        str(run_dir.parent),
        "--nbval-cell-timeout",
        "600",
    ]
    cmd += [str(run_dir / f"{nb}.ipynb") for nb in profiles.NOTEBOOKS]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    assert re.search(r"\b\d+ passed\b", proc.stdout)


@pytest.mark.slow
def test_book_builds_from_the_smoke_run_with_warnings_as_errors(smoke_run):
    run_dir, _ = smoke_run
    html = book.build_book(run_dir)
    for page in ["intro", "methods", "run/results", *(f"run/{nb}" for nb in profiles.NOTEBOOKS)]:
        assert (html / f"{page}.html").exists(), page
    results = (html / "run" / "results.html").read_text()
    assert "test RMSE" in results or "rmse_pts" in results
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    assert (html / "run" / "05_evaluation.html").read_text().count("<img") >= 3
