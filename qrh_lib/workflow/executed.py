"""Executed notebooks made fit for the book: no TensorFlow log noise, no widgets, no absolute paths."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from ..paths import PROJ_ROOT

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
    (``../../tmp/run``), which :func:`qrh_lib.workflow.runs.run_path` resolves back: the executed copy still runs.
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
