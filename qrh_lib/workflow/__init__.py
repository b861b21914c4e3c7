"""The workflow: profiles, the papermill pipeline and its step stamps, run folders, the results page, the book.

Modules: :mod:`.profiles`, :mod:`.pipeline` (``python -m qrh_lib.workflow.pipeline``), :mod:`.stamps`,
:mod:`.executed` (clean-up of executed notebooks), :mod:`.book`, :mod:`.runs` (run folders), :mod:`.report`
(the results page), :mod:`.plotting` (the notebooks' figures and tables).

The public names below are imported on first use, so that ``python -m qrh_lib.workflow.pipeline`` (or
``.profiles``) does not import its own module twice.
"""

from .. import lazy_exports

#: Public name -> the module that defines it (imported on first use).
_PUBLIC = {
    "build_book": "book",
    "run": "pipeline",
    "load_profile": "profiles",
    "profile_table": "profiles",
    "dataset_path": "runs",
    "read_json": "runs",
    "run_path": "runs",
    "write_json": "runs",
    "write_metrics": "runs",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
