"""Step keys see every file of the library, subpackages included."""

import shutil

from qrh_lib.paths import LIBRARY_DIR
from qrh_lib.workflow import stamps


def test_library_hash_sees_files_in_subpackages(tmp_path, monkeypatch):
    copy = tmp_path / "qrh_lib"
    shutil.copytree(LIBRARY_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(stamps, "LIBRARY_DIR", copy)
    before = stamps.library_source_sha()
    assert before == stamps.library_source_sha()
    engine = copy / "pricer" / "mc.py"
    engine.write_text(engine.read_text() + "\n# a comment\n")
    after_edit = stamps.library_source_sha()
    assert after_edit != before
    (copy / "surrogate" / "new_module.py").write_text("X = 1\n")
    assert stamps.library_source_sha() != after_edit
