"""Progress of long steps, from library code in a notebook kernel to the terminal of the pipeline.

A notebook run by papermill shows its ``tqdm`` bars in the kernel, out of sight of whoever started
``python -m qrh_lib.workflow.pipeline run``. The two ends meet in a small JSON file::

    {"task": "pricing data_...", "done": 1200, "total": 4096, "unit": "surface", "time": 1767225600.0}

The pipeline names the file in the environment variable :data:`ENV` before it starts a kernel (kernels
inherit its environment) and, while the notebook runs, :func:`watch` polls the file and draws a terminal bar
per task. In the kernel, :func:`report` (or a :class:`Bar`, or :func:`keras_callback`) replaces the file
atomically, at most one write per :data:`MIN_INTERVAL` seconds; without the variable it does nothing, so
library code reports unconditionally.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

from .artifacts import atomic_write

#: The environment variable naming the progress file.
ENV = "QRH_PROGRESS_FILE"
#: Least seconds between two writes of one task; a task's first and last (``done >= total``) values always go.
MIN_INTERVAL = 0.25

_last = {"task": None, "time": -float("inf")}


def report(task: str, done: int, total: int, unit: str = "it", force: bool = False) -> None:
    """Record that ``done`` of ``total`` ``unit`` of ``task`` are done, if the pipeline is listening.

    Throttled to one write per :data:`MIN_INTERVAL` seconds, except a new task, the last value
    (``done >= total``) and ``force``. Never raises for a file it cannot write: progress is only shown.
    """
    path = os.environ.get(ENV)
    if not path:
        return
    now = time.monotonic()
    if not force and task == _last["task"] and done < total and now - _last["time"] < MIN_INTERVAL:
        return
    _last.update(task=task, time=now)
    doc = {"task": task, "done": int(done), "total": int(total), "unit": unit, "time": time.time()}
    try:
        atomic_write(path, lambda f: f.write(json.dumps(doc).encode()), fsync=False)
    except OSError:
        pass


class Bar:
    """A ``tqdm.auto`` bar in the notebook that also reports to the pipeline: one call for library code.

    ``Bar(total, desc, unit, **tqdm_kwargs)``, then :meth:`update` and :meth:`close` as with tqdm (``initial``
    and ``smoothing``, for example, go to tqdm). The task reported is ``desc``; the count is kept here, so it
    is reported even when tqdm is disabled.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", **tqdm_kwargs):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, **tqdm_kwargs)
        self.task, self.total, self.unit, self.done = desc, total, unit, tqdm_kwargs.get("initial", 0)
        report(desc, self.done, total, unit)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)
        self.done += n
        report(self.task, self.done, self.total, self.unit)

    def close(self) -> None:
        """Close the bar and report its final count, throttled or not."""
        self._bar.close()
        report(self.task, self.done, self.total, self.unit, force=True)


def keras_callback(epochs: int, task: str = "training"):
    """A Keras callback reporting epochs done out of ``epochs`` (the most: early stopping may end sooner)."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.done = 0
            report(task, 0, epochs, "epoch", force=True)

        def on_epoch_end(self, epoch, logs=None):
            self.done = epoch + 1
            report(task, self.done, epochs, "epoch")

        def on_train_end(self, logs=None):
            report(task, self.done, epochs, "epoch", force=True)

    return EpochProgress()


# --------------------------------------------------------------------------------------------- the terminal


class Watcher:
    """Draws the progress file's tasks as tqdm bars on ``stream``, one bar per task name.

    :meth:`poll` reads the file once: a new task closes the previous bar and opens one at the task's count (so
    a resumed task's rate counts only the new work), a count that went back starts the bar again, an unchanged
    count redraws the bar with its elapsed time, and the last count (``done >= total``) closes the bar, so its
    time stays that of the task. A missing or unreadable file is skipped.
    """

    def __init__(self, path: str | os.PathLike, stream):
        self.path, self.stream = Path(path), stream
        self.bar, self.seen = None, None

    def poll(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
            seen = task, done, total, unit = doc["task"], int(doc["done"]), int(doc["total"]), doc["unit"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        if seen == self.seen:
            if self.bar is not None:
                self.bar.refresh()  # the elapsed time goes on between counts
            return
        from tqdm import tqdm

        if self.bar is None or task != self.seen[0] or done < self.bar.n:
            self.close()
            # the polls are the throttle: draw at each
            draw = {"file": self.stream, "dynamic_ncols": True, "mininterval": 0, "miniters": 1}
            self.bar = tqdm(total=total, initial=done, desc=task, unit=unit, **draw)
        else:
            self.bar.total = total
            self.bar.update(done - self.bar.n)
        self.seen = seen
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


@contextlib.contextmanager
def watch(path: str | os.PathLike, stream, interval: float = 0.5):
    """Within the block, :data:`ENV` names ``path`` (a stale file is removed first) and a thread draws it on
    ``stream`` every ``interval`` seconds; on exit a last poll, the bar closed and the variable restored."""
    path = Path(path)
    path.unlink(missing_ok=True)
    watcher, stop = Watcher(path, stream), threading.Event()

    def loop():
        while not stop.wait(interval):
            watcher.poll()

    thread = threading.Thread(target=loop, name="qrh-progress", daemon=True)
    saved = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    thread.start()
    try:
        yield watcher
    finally:
        stop.set()
        thread.join()
        watcher.poll()
        watcher.close()
        if saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved
