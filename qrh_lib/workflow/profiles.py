"""Profiles: the parameters of every notebook for one kind of run, read from ``profiles/<name>.yaml``.

A profile gives each notebook its parameters::

    description: one line
    common: {seed: 0}                      # passed to every notebook that declares them
    notebooks:
      01_data_generation: {generation: {n_samples: 200}}

Everything is checked before a notebook runs: unknown notebooks, parameters a notebook does not declare in
its ``parameters`` cell, and unknown keys inside the overrides of a library config (see :data:`CONFIG_PARAMETERS`)
raise an error naming the profile, the notebook and what it accepts.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..paths import PROFILES_DIR, PROJ_ROOT

NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
NOTEBOOKS = (
    "01_data_generation",
    "02_pca",
    "03_model",
    "04_training",
    "05_evaluation",
    "06_buckets",
    "07_residuals",
    "08_calibration",
    "09_vix",
    "10_market",
)
DEFAULT_PROFILE = "cpu"


def load_profile(name: str | os.PathLike) -> dict:
    """Read ``profiles/<name>.yaml`` (or a path) into ``{name, description, params: {notebook: dict}}``.

    Common parameters go to every notebook that declares them; per-notebook values override them.
    Unknown notebooks or parameters raise ``ValueError``.
    """
    path = _profile_path(name)
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no profile {str(name)!r} (looked for {path}); known profiles: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"description", "common", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: description, common, notebooks")
    per_nb = raw.get("notebooks") or {}
    bad = set(per_nb) - set(NOTEBOOKS)
    if bad:
        raise ValueError(f"{path}: unknown notebooks {sorted(bad)}; known: {list(NOTEBOOKS)}")
    common = raw.get("common") or {}
    params = {}
    for nb in NOTEBOOKS:
        declared = notebook_parameters(nb)
        extra = set(per_nb.get(nb) or {}) - set(declared)
        if extra:
            raise ValueError(f"{path}: {nb} has no parameters {sorted(extra)}; it accepts {sorted(declared)}")
        params[nb] = {k: v for k, v in common.items() if k in declared} | (per_nb.get(nb) or {})
        for (where, name), check in config_parameters().items():
            if where == nb and name in params[nb]:
                try:
                    check(params[nb][name])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{path}: {nb} parameter {name}: {err}") from err
    return {"name": path.stem, "description": raw.get("description", ""), "params": params}


def config_parameters() -> dict:
    """The notebooks' parameters that are overrides of a library config, each with the check the notebook applies
    (unknown keys and bad values raise): ``{(notebook, parameter): check}``. Their defaults are empty dicts, so a
    default lives only in its config (tested)."""
    from ..params import config_from_overrides
    from ..pricer.cluster import ClusterConfig
    from ..pricer.config import GenerationConfig
    from ..surrogate.calibration import calibration_options
    from ..surrogate.config import LossConfig, ModelConfig, PCAConfig, TrainConfig, vix_train_config

    parts = {"pca": PCAConfig(), "model": ModelConfig(), "loss": LossConfig(), "seed": 0}
    return {
        ("01_data_generation", "generation"): lambda d: config_from_overrides(GenerationConfig, d, seed=0),
        ("01_data_generation", "cluster"): lambda d: config_from_overrides(ClusterConfig, d),
        ("02_pca", "pca"): lambda d: config_from_overrides(PCAConfig, d),
        ("03_model", "model"): lambda d: config_from_overrides(ModelConfig, d),
        ("03_model", "loss"): lambda d: config_from_overrides(LossConfig, d),
        ("04_training", "train"): lambda d: config_from_overrides(TrainConfig, d, **parts),
        ("08_calibration", "calibration"): calibration_options,
        ("09_vix", "train"): lambda d: vix_train_config(d, seed=0),
        ("09_vix", "calibration"): calibration_options,
        ("10_market", "calibration"): calibration_options,
    }


def mirrored_defaults() -> dict:
    """Notebook parameters that are not config overrides but whose default is a library default, and that
    default: ``{(notebook, parameter): value}`` (tested equal to the notebooks' defaults)."""
    from ..pricer.config import GenerationConfig, MCConfig

    mirrored = {("01_data_generation", "n_check_paths"): MCConfig().n_paths,
                ("08_calibration", "repricing_paths"): MCConfig().n_paths,
                ("09_vix", "quote_paths"): MCConfig().n_paths,
                ("10_market", "repricing_paths"): MCConfig().n_paths}
    return mirrored | {(nb, "seed"): GenerationConfig().seed for nb in NOTEBOOKS}


def notebook_defaults(nb: str) -> dict:
    """The default values of a notebook's parameters (evaluated literals)."""
    import ast

    return {name: ast.literal_eval(p["default"]) for name, p in notebook_parameters(nb).items()}


def profile_table(name: str | os.PathLike) -> str:
    """A Markdown table of what a profile sets, notebook by notebook (everything else is the defaults)."""
    prof = load_profile(name)
    raw = yaml.safe_load(_profile_path(name).read_text()) or {}
    rows = ["| notebook | parameter | value |", "| --- | --- | --- |"]
    for nb in NOTEBOOKS:
        for key in (raw.get("notebooks") or {}).get(nb) or {}:
            rows.append(f"| {nb} | `{key}` | `{_inline(prof['params'][nb][key])}` |")
    return "\n".join(rows)


def _inline(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    return f"{value:_}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)


def _profile_path(name: str | os.PathLike) -> Path:
    return Path(name) if str(name).endswith((".yaml", ".yml")) else PROFILES_DIR / f"{name}.yaml"


def notebook_parameters(nb: str) -> dict:
    """Parameters declared in a notebook's ``parameters`` cell, as papermill reads them."""
    import papermill

    return papermill.inspect_notebook(str(NOTEBOOKS_DIR / f"{nb}.ipynb"))


if __name__ == "__main__":  # python -m qrh_lib.workflow.profiles cpu: the table of what a profile sets
    import sys

    print(profile_table(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PROFILE))
