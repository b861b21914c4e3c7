"""Profiles: one place per setting. Notebook defaults are the library's, profiles are checked before anything
runs, and the README shows what the main job's profile sets."""

import re

import pytest

from qrh_lib.paths import PROJ_ROOT
from qrh_lib.workflow import profiles


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "rz"])
def test_profiles_only_set_parameters_the_notebooks_declare(name):
    prof = profiles.load_profile(name)
    assert set(prof["params"]) == set(profiles.NOTEBOOKS)
    assert prof["params"]["01_data_generation"]["seed"] == prof["params"]["04_training"]["seed"]


def test_unknown_profile_keys_are_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("notebooks:\n  02_pca:\n    n_componentz: 3\n")
    with pytest.raises(ValueError, match=r"02_pca has no parameters \['n_componentz'\]"):
        profiles.load_profile(bad)
    bad.write_text("notebooks:\n  09_extra: {}\n")
    with pytest.raises(ValueError, match="unknown notebooks"):
        profiles.load_profile(bad)


@pytest.mark.parametrize(("notebook", "text", "match"), [
    ("01_data_generation", "generation: {n_sample: 10}", r"01_data_generation parameter generation: unknown"),
    ("01_data_generation", "generation: {mc: {n_pahts: 10}}", r"unknown MCConfig"),
    ("01_data_generation", "generation: {seed: 3}", r"\['seed'\] are set elsewhere"),
    ("01_data_generation", "cluster: {worker: 2}", r"cluster: unknown ClusterConfig keys \['worker'\]"),
    ("01_data_generation", "cluster: {workers: 2, scheduler: 'tcp://127.0.0.1:8786'}", r"give one"),
    ("03_model", "model: {widht: 8}", r"03_model parameter model: unknown ModelConfig keys \['widht'\]"),
    ("03_model", "loss: {huber_delta: -1}", r"huber_delta = -1 must be finite and >= 0"),
    ("04_training", "train: {width: 8}", r"\['width'\]"),
    ("08_calibration", "calibration: {n_start: 3}", r"unknown calibration options \['n_start'\]"),
])
def test_overrides_inside_a_profile_are_checked_before_anything_runs(tmp_path, notebook, text, match):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"notebooks:\n  {notebook}:\n    {text}\n")
    with pytest.raises(ValueError, match=match):
        profiles.load_profile(bad)


@pytest.mark.parametrize("notebook", profiles.NOTEBOOKS)
def test_notebook_defaults_are_the_librarys(notebook):
    defaults = profiles.notebook_defaults(notebook)
    for (nb, name), check in profiles.config_parameters().items():
        if nb == notebook:
            # an empty overrides dict: the notebook's defaults are its config's, defined there and nowhere else
            assert defaults[name] == {}, f"{nb}: {name} overrides the library by default"
            check(defaults[name])
    for (nb, name), value in profiles.mirrored_defaults().items():
        if nb == notebook:
            assert defaults[name] == value, f"{nb}: {name} = {defaults[name]}, the library's default is {value}"


def test_readme_shows_what_the_main_job_sets():
    readme = (PROJ_ROOT / "README.md").read_text()
    block = re.search(r"<!-- profile: cpu -->\n(.*?)\n<!-- /profile -->", readme, re.S)
    assert block, "README.md has no <!-- profile: cpu --> table"
    table = profiles.profile_table("cpu")
    assert block.group(1).strip() == table, "regenerate it: python -m qrh_lib.workflow.profiles cpu"
