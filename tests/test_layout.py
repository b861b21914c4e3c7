"""The library's layout follows its import graph, and the public names keep their short paths."""

from __future__ import annotations

import ast
import importlib

import pytest

from qrh_lib.paths import LIBRARY_DIR

SUBPACKAGES = ("pricer", "surrogate", "workflow")
#: Modules at the top that only re-export a subpackage's public entry points under their short path.
PUBLIC_PATHS = {"pricing": "pricer", "calibration": "surrogate", "vix": "pricer"}


def layer(module: str) -> str:
    """``qrh_lib.pricer.mc`` -> ``pricer``; a top-level module -> ``top``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in SUBPACKAGES else "top"


def imports_of(path) -> set[str]:
    """The ``qrh_lib`` modules a file imports (relative imports resolved), at any depth of the file."""
    rel = path.relative_to(LIBRARY_DIR.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("qrh_lib"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names if layer(f"{target}.{a.name}") != "top")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("qrh_lib"))
    return found


ALLOWED = {"top": {"top"}, "pricer": {"top", "pricer"}, "surrogate": {"top", "surrogate"},
           "workflow": {"top", "pricer", "surrogate", "workflow"}}
#: The model's exact theory: the factor kernel and the moments that decide stability. The stable domain
#: (qrh_lib.domain) and the surrogate's checks of it use them; the engine (mc, pricing, generate ...) they never do.
THEORY = {"qrh_lib.pricer.kernel", "qrh_lib.pricer.moments"}


@pytest.mark.parametrize("path", sorted(LIBRARY_DIR.rglob("*.py")), ids=lambda p: p.relative_to(LIBRARY_DIR).as_posix())
def test_no_module_imports_upwards_or_across(path):
    rel = path.relative_to(LIBRARY_DIR.parent).with_suffix("").as_posix().replace("/", ".")
    own = layer(rel)
    if own == "top" and path.stem in PUBLIC_PATHS:
        allowed = {"top", PUBLIC_PATHS[path.stem]}
    else:
        allowed = ALLOWED[own]
    bad = sorted(m for m in imports_of(path)
                 if layer(m) not in allowed and not any(m == t or m.startswith(t + ".") for t in THEORY))
    assert not bad, f"{rel} ({own}) imports {bad}"


def test_public_names_keep_their_short_paths():
    import qrh_lib.calibration
    import qrh_lib.grid
    import qrh_lib.pricing
    import qrh_lib.surrogate
    import qrh_lib.vix
    from qrh_lib.pricer import pricing, vix
    from qrh_lib.surrogate import calibration, predictor

    assert qrh_lib.grid.default_grid().size == 60 and isinstance(qrh_lib.grid.default_grid(), qrh_lib.grid.Grid)
    assert qrh_lib.pricing.mc_iv_surface is pricing.mc_iv_surface
    assert qrh_lib.surrogate.QRHSurrogate is predictor.QRHSurrogate
    assert qrh_lib.calibration.calibrate is calibration.calibrate
    assert qrh_lib.vix.mc_vix_surface is vix.mc_vix_surface


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_lists_its_public_names(package):
    mod = importlib.import_module(f"qrh_lib.{package}")
    assert mod.__all__ and mod.__doc__
    for name in mod.__all__:
        assert getattr(mod, name) is not None
