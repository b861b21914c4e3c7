"""Tables that judge calibrations: the inputs found and how close they sit to the domain's bounds, their recovery
and identifiability where the true inputs are known, and the fit of calibrations to quotes per expiry
(:func:`qrh_lib.surrogate.market.fit_by_expiry`) and of joint SPX and VIX calibrations.

The notebooks show these tables; the calibrations themselves are :func:`~.calibration.calibrate_many`,
:func:`~.quotes.calibrate_quotes`, :func:`~.joint.calibrate_joint_many` and :func:`~.joint.calibrate_joint_quotes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..params import PARAM_NAMES
from .calibration import CalibrationResult, fit_rmse_pts, identifiability
from .joint import JointSurrogate
from .market import fit_by_expiry
from .quotes import Quotes, vols_at_quotes


def inputs_table(surrogate, X, index=None, names=PARAM_NAMES, rtol: float = 1e-4) -> pd.DataFrame:
    """One row per input vector ``X`` (raw, (n, 15) or (15,)): the inputs ``names``, the feedback ratio
    ``a / a*(lambda, eta)`` (``feedback_ratio``) and ``at_bound``, the inputs on a bound of the surrogate's domain,
    e.g. ``"lambda (lower), a (stability margin)"`` ("" if none): within ``rtol`` of the box's width from a bound of
    the box, or for ``a`` within ``rtol`` (relative) of the domain's largest feedback ratio."""
    X = np.atleast_2d(np.asarray(X, np.float64))
    box, margin = surrogate.box, surrogate.domain.max_feedback_ratio
    tol = rtol * (box.hi - box.lo)
    ratio = surrogate.domain.feedback_ratio(X)
    at_bound = []
    for x, r in zip(X, ratio, strict=True):
        free = box.hi > box.lo  # inputs fixed by equal bounds are not "on a bound"
        hits = [f"{n} (lower)" for n, on in zip(PARAM_NAMES, free & (x <= box.lo + tol), strict=True) if on]
        hits += [f"{n} (upper)" for n, on in zip(PARAM_NAMES, free & (x >= box.hi - tol), strict=True) if on]
        if margin is not None and r >= margin * (1.0 - rtol):
            hits.append("a (stability margin)")
        at_bound.append(", ".join(hits))
    cols = [PARAM_NAMES.index(n) for n in names]
    table = pd.DataFrame(X[:, cols], columns=list(names), index=index)
    return table.assign(feedback_ratio=ratio, at_bound=at_bound)


def known_states_table(surrogate, known: dict, results: list[CalibrationResult], targets, repriced_iv,
                       names=PARAM_NAMES[:5]) -> pd.DataFrame:
    """States whose inputs are known (``known``: name -> raw inputs), priced (``targets``, one surface per state),
    calibrated (``results``) and the calibrated inputs priced again (``repriced_iv``): two rows per state, its
    ``"published"`` and its ``"calibrated"`` inputs (:func:`inputs_table`), the latter with the calibration's fit and
    the fit of the re-priced surface to the target (``mc_round_trip_pts``), in vol points."""
    X = np.array([v for pair in zip(known.values(), (r.x for r in results), strict=True) for v in pair])
    table = inputs_table(surrogate, X, names=names)
    table.insert(0, "inputs", ["published", "calibrated"] * len(known))
    table.insert(0, "state", [name for name in known for _ in range(2)])
    calibrated = table["inputs"] == "calibrated"
    table.loc[calibrated, "fit_rmse_pts"] = [r.fit_rmse_pts for r in results]
    table.loc[calibrated, "mc_round_trip_pts"] = fit_rmse_pts(repriced_iv, targets)
    return table.reset_index(drop=True)


def recovery_table(surrogate, results: list[CalibrationResult], X_true) -> pd.DataFrame:
    """Per input, how far calibrations (``results``) land from the true inputs ``X_true`` (n, 15), in widths of the
    surrogate's box (median and 90th percentile), and the median sensitivity of the surface to the input at the true
    states (:func:`~.calibration.identifiability`, vol points per unit of the scaled input)."""
    X_true = np.atleast_2d(np.asarray(X_true, np.float64))
    err = np.abs(np.array([r.x for r in results]) - X_true) / (surrogate.box.hi - surrogate.box.lo)
    sensitivity = [identifiability(surrogate, x)["sensitivity"] for x in X_true]
    return pd.DataFrame({
        "input": PARAM_NAMES,
        "median_error_box_widths": np.median(err, axis=0),
        "p90_error_box_widths": np.percentile(err, 90, axis=0),
        "median_sensitivity_pts_per_u": np.median(sensitivity, axis=0),
    })


def identifiability_table(surrogate, X) -> pd.DataFrame:
    """The singular values of the surface's Jacobian in the 15 scaled inputs at the states ``X`` (n, 15), each
    relative to the largest: their median, 10th and 90th percentiles over the states, largest first. A value far
    below 1 is a combination of inputs the surface hardly determines."""
    sv = np.array([d["singular_values"] / d["singular_values"][0]
                   for d in (identifiability(surrogate, x) for x in np.atleast_2d(X))])
    return pd.DataFrame({"k": np.arange(1, sv.shape[1] + 1), "median_singular_value_relative": np.median(sv, axis=0),
                         "p10": np.percentile(sv, 10, axis=0), "p90": np.percentile(sv, 90, axis=0)})


def fit_at_quotes(surrogate, iv, quotes: Quotes) -> pd.DataFrame:
    """The fit of a surface on the surrogate's grid (e.g. a calibration's ``iv``) to bid-ask quotes, per expiry and
    over all (:func:`~.market.fit_by_expiry`), over the quotes that have a vol."""
    quoted = quotes.quoted()
    return fit_by_expiry(quoted, vols_at_quotes(surrogate, iv, quoted))


def joint_fit_at_quotes(joint: JointSurrogate, iv, spx: Quotes, vix: Quotes) -> pd.DataFrame:
    """:func:`fit_at_quotes` of joint vols ``iv`` (SPX then VIX, e.g. a joint calibration's) to SPX and VIX quotes:
    rows indexed by ``underlying`` (``"SPX"``, ``"VIX"``) and expiry."""
    spx_iv, vix_iv = joint.split(iv)
    return pd.concat({"SPX": fit_at_quotes(joint.spx, spx_iv, spx), "VIX": fit_at_quotes(joint.vix, vix_iv, vix)},
                     names=["underlying"])


def joint_fit_table(joint: JointSurrogate, results: list[CalibrationResult], spx_targets, vix_targets) -> pd.DataFrame:
    """One row per joint calibration to SPX and VIX targets (rows of ``spx_targets`` and ``vix_targets``): its time
    (``ms``), the RMS error of its SPX and VIX surfaces against their targets (vol points, equal weights) and its
    residual evaluations."""
    spx_iv, vix_iv = joint.split(np.array([r.iv for r in results]))
    return pd.DataFrame({"ms": [1e3 * r.seconds for r in results],
                         "fit_spx_pts": fit_rmse_pts(spx_iv, np.atleast_2d(spx_targets)),
                         "fit_vix_pts": fit_rmse_pts(vix_iv, np.atleast_2d(vix_targets)),
                         "evaluations": [r.n_evaluations for r in results]})
