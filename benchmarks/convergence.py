"""Convergence study of the scheme and time grid: discretisation bias against a much finer grid, over the box.

States drawn over Rosenbaum & Zhang's box (scrambled Sobol; reported apart for the stable states and the
explosive ones, whose second moments grow without bound, see qrh_lib.pricer.moments.second_moment_growth) and stress
states at the corners of z0 (qrh_lib.pricer.convergence.corner_states) are priced by each candidate (a factor scheme,
on the default time grid or on it with every step halved) and by the reference: the exponential (ETD) scheme on
the default grid with every step split ``--refine`` times, on the same Brownian paths
(qrh_lib.pricer.convergence.scheme_study). The bias of each implied vol is the coupled difference; a point counts as
biased beyond 0.1 vol point only when its bias exceeds 0.001 by more than three standard errors. The reference's
own error is estimated by the reference at half its refinement (candidate ``etd_ref_half``). Writes
benchmarks/results/convergence.json.

    python benchmarks/convergence.py [--n-box 32] [--n-paths 8192] [--refine 32]
    python benchmarks/convergence.py --quick --out /tmp/convergence.json   # a check that it runs
"""

from __future__ import annotations

import json

import numpy as np
from _common import parse_args, parser, previous_result, record, result_path, sample_domain, timed, write_result

from qrh_lib.domain import Domain
from qrh_lib.grid import default_grid
from qrh_lib.params import PARAM_NAMES, RZ_BOX
from qrh_lib.pricer.convergence import bias_by_maturity, corner_states, scheme_study
from qrh_lib.pricer.mc import MCConfig, QRHEngine
from qrh_lib.pricer.moments import second_moment_growth

TOL = 1e-3  # 0.1 vol point
GRIDS = {  # the candidates' time grid (MCConfig settings); the reference refines it
    "default": {"steps_per_year": 365, "first_step": 1e-5, "grading": 0.01},  # 930 steps
    "fine_start": {"steps_per_year": 365, "first_step": 5e-6, "grading": 0.005},  # twice as fine to daily steps
    "g1224": {"steps_per_year": 730, "first_step": 1e-5, "grading": 0.01},  # 1,224 steps
    "g978": {"steps_per_year": 730, "first_step": 1e-5, "grading": 0.02},  # 978 steps
    # the fine start of MCConfig's defaults for the first day only, then a step growing by 2%: 1,241 steps
    "two_stage": {"steps_per_year": 730, "first_step": 5e-6, "grading": 0.005, "fine_until": 1 / 365,
                  "late_grading": 0.02},
}
#: Sizes of ``--quick``: two states of the box, one candidate, few paths, a coarse reference.
QUICK = {"n_box": 2, "n_paths": 256, "refine": 2, "candidates": ["implicit"], "sets": ["box_stable"]}
CANDIDATES = {  # name: (factor scheme, split of each step of the default grid)
    "implicit": ("implicit", 1),
    "etd": ("etd", 1),
    "implicit_x2": ("implicit", 2),
    "etd_x2": ("etd", 2),
}


def per_state(X, res, grid):
    """Each state's growth rate and, by maturity, its largest |bias| and largest |bias| - 3 se (vol units)."""
    shape = (-1, *grid.shape)
    b, se = np.abs(res["bias"].reshape(shape)), res["bias_se"].reshape(shape)
    with np.errstate(invalid="ignore"):
        worst = np.nanmax(np.where(np.isfinite(b), b, -np.inf), axis=1)
        excess = np.nanmax(np.where(np.isfinite(b), b - 3 * se, -np.inf), axis=1)
    return [{"growth": float(g), "max_abs_bias": [float(v) if np.isfinite(v) else None for v in w],
             "max_excess": [float(v) if np.isfinite(v) else None for v in e]}
            for g, w, e in zip(second_moment_growth(X), worst, excess, strict=True)]


def main(argv=None):
    p = parser(__doc__, "convergence")
    p.add_argument("--n-box", type=int, default=32)
    p.add_argument("--n-paths", type=int, default=8192)
    p.add_argument("--refine", type=int, default=32)
    p.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    p.add_argument("--sets", nargs="*", default=["box_stable", "corners", "corners_near_critical", "box_explosive"],
                   help="sets of states to study; with --update, the others are kept from the existing file")
    p.add_argument("--update", action="store_true", help="add to an existing results file (same refine, paths)")
    p.add_argument("--grid", default="default", choices=sorted(GRIDS),
                   help="time grid of the candidates (the reference refines it); names get a suffix if not default")
    a = parse_args(p, argv, quick=QUICK)
    out = result_path(a, "convergence")
    grid = default_grid()
    box = sample_domain(a.n_box, Domain(RZ_BOX, None), seed=21)  # the whole box: stable and explosive states
    explosive = second_moment_growth(box) > 0
    sets = {"box_stable": box[~explosive], "corners": corner_states(feedback=0.5),
            "corners_near_critical": corner_states(feedback=0.9), "box_explosive": box[explosive]}
    sets = {k: v for k, v in sets.items() if k in a.sets}
    result = record("convergence", refine=a.refine, n_paths=a.n_paths, tolerance=TOL, param_names=list(PARAM_NAMES),
                    states={k: v.tolist() for k, v in sets.items()}, grids={})
    old = previous_result(out) if a.update else {}
    if old:
        if (old["refine"], old["n_paths"]) != (a.refine, a.n_paths):
            raise SystemExit(f"{out} was made with other settings; run without --update")
        for key in ("grids", "candidates"):
            result[key] = old.get(key, {})
        result["states"] = {**old["states"], **result["states"]}
    cfg = MCConfig(n_paths=a.n_paths, batch_size=2).replace(**GRIDS[a.grid])
    suffix = "" if a.grid == "default" else f"@{a.grid}"
    cands = {name: CANDIDATES[name] for name in a.candidates}
    cands["etd_ref_half"] = ("etd", a.refine // 2)
    n_steps = QRHEngine(grid, cfg).n_steps
    result["reference"] = {"scheme": "etd", "refine": a.refine, "of_each_step_of": "the candidate's grid"}
    result.setdefault("candidates", {}).update({
        name + suffix: {"scheme": sc, "split": sp, "n_steps": n_steps * sp, "grid": GRIDS[a.grid],
                        "reference_steps": n_steps * a.refine}
        for name, (sc, sp) in cands.items()})
    for set_name, X in sets.items():
        run = timed(lambda X=X: scheme_study(X, grid, cfg, refine=a.refine, candidates=cands, seed=1))
        res, secs = run.result, run.best
        for name in cands:
            entry = result["grids"].setdefault(name + suffix, {})
            entry[set_name] = {
                "by_maturity": bias_by_maturity(res[name], grid, TOL),
                "seconds_all_candidates": secs,
                "missing_vols": int(np.sum(~np.isfinite(res[name]["bias"]))),
                "per_state": per_state(X, res[name], grid),
            }
            summary = [(r["maturity_days"], round(100 * r.get("median_abs_bias", np.nan), 3),
                        r.get("states_beyond_tol"))
                       for r in entry[set_name]["by_maturity"]]
            print(name + suffix, set_name, json.dumps(summary), flush=True)
        write_result(out, result, quiet=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
