"""Progress from a notebook kernel to the pipeline's terminal: the file, its throttling, the bars drawn."""

import io
import json
import os
import subprocess
import sys

import pytest

from qrh_lib import progress
from qrh_lib.workflow import pipeline, stamps


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    """The progress file named in the environment, as the pipeline names it for a kernel."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    return path


def test_report_writes_nothing_unless_the_pipeline_listens(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.report("pricing", 1, 10, "surface")
    assert list(tmp_path.iterdir()) == []


def test_report_writes_the_task_as_json(progress_file):
    progress.report("pricing", 3, 10, "surface")
    doc = json.loads(progress_file.read_text())
    assert {k: doc[k] for k in ("task", "done", "total", "unit")} == {
        "task": "pricing",
        "done": 3,
        "total": 10,
        "unit": "surface",
    }
    assert doc["time"] > 0
    assert [p.name for p in progress_file.parent.iterdir()] == ["progress.json"], "no temporary file is left"


def test_throttling_skips_intermediate_counts_but_never_a_new_task_or_the_last_count(progress_file, monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL", 60.0)

    def done():
        return json.loads(progress_file.read_text())["done"]

    progress.report("throttled", 1, 10)
    progress.report("throttled", 2, 10)
    assert done() == 1
    progress.report("throttled", 10, 10)
    assert done() == 10
    progress.report("next task", 4, 10)
    assert done() == 4
    progress.report("next task", 5, 10, force=True)
    assert done() == 5


def test_watcher_draws_a_bar_per_task(tmp_path):
    path, stream = tmp_path / "progress.json", io.StringIO()
    watcher = progress.Watcher(path, stream)
    watcher.poll()
    assert watcher.bar is None and stream.getvalue() == "", "no file yet: nothing drawn"

    def write(task, done, total=10):
        path.write_text(json.dumps({"task": task, "done": done, "total": total, "unit": "surface", "time": 0}))

    write("pricing", 3)
    watcher.poll()
    assert watcher.bar.n == 3 and "pricing" in stream.getvalue() and "3/10" in stream.getvalue()
    write("pricing", 7)
    watcher.poll()
    assert watcher.bar.n == 7 and "7/10" in stream.getvalue()
    first = watcher.bar
    write("training", 1, 400)
    watcher.poll()
    assert first.disable, "a new task closes the previous bar"
    assert watcher.bar.desc.startswith("training") and watcher.bar.total == 400 and "1/400" in stream.getvalue()
    path.write_text('{"task": "train')
    watcher.poll()
    assert watcher.bar.n == 1, "an unreadable file is skipped"
    write("training", 400, 400)
    watcher.poll()
    assert watcher.bar is None and "400/400" in stream.getvalue(), "the last count closes the bar"
    drawn = stream.getvalue()
    watcher.poll()
    assert stream.getvalue() == drawn, "a finished task is not drawn again"
    write("training", 2, 400)
    watcher.poll()
    assert watcher.bar.n == 2, "the task started again: a new bar"
    watcher.close()
    assert watcher.bar is None


def test_watch_names_the_file_for_the_block_only_and_shows_the_last_count(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    path, stream = tmp_path / "progress.json", io.StringIO()
    path.write_text("stale")
    with progress.watch(path, stream, interval=0.01) as watcher:
        assert os.environ[progress.ENV] == str(path)
        for i in range(1, 6):
            progress.report("watched", i, 5, "surface")
    assert progress.ENV not in os.environ
    assert watcher.bar is None and "5/5" in stream.getvalue()


def test_bar_drives_tqdm_and_reports(progress_file):
    shown = io.StringIO()
    bar = progress.Bar(5, "pricing data_x", "surface", file=shown, initial=1)
    assert json.loads(progress_file.read_text())["done"] == 1
    bar.update(2)
    bar.update(2)
    bar.close()
    doc = json.loads(progress_file.read_text())
    assert (doc["task"], doc["done"], doc["total"], doc["unit"]) == ("pricing data_x", 5, 5, "surface")
    assert "5/5" in shown.getvalue()


def test_keras_callback_reports_epochs(progress_file):
    callback = progress.keras_callback(epochs=300)
    callback.on_train_begin()
    assert json.loads(progress_file.read_text())["done"] == 0
    for epoch in range(12):
        callback.on_epoch_end(epoch)
    callback.on_train_end()
    doc = json.loads(progress_file.read_text())
    assert (doc["task"], doc["done"], doc["total"], doc["unit"]) == ("training", 12, 300, "epoch")


def test_a_kernels_progress_reaches_the_terminal_and_its_stderr_the_log(tmp_path, capfd):
    """A child process stands in for the kernel: it inherits the environment and file descriptor 2."""
    (tmp_path / stamps.STAMPS).mkdir()
    code = (
        "import sys; from qrh_lib import progress; print('kernel noise', file=sys.stderr)\n"
        "for i in range(5): progress.report('pricing', i, 4, 'surface')"
    )
    with pipeline._kernel_output(tmp_path, "nb"):
        subprocess.run([sys.executable, "-c", code], check=True)
    terminal = capfd.readouterr().err
    assert "pricing" in terminal and "4/4" in terminal and "kernel noise" not in terminal
    log = (tmp_path / stamps.STAMPS / "nb.kernel.log").read_text()
    assert "kernel noise" in log and "pricing" not in log
