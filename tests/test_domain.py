"""The product's domain: the critical feedback, the feedback ratio, and inputs refused beyond the margin."""

import numpy as np
import pytest

from qrh_lib.domain import STABILITY_MARGIN, Domain
from qrh_lib.params import COL_A, COL_ETA, COL_LAMBDA, RZ_BOX
from qrh_lib.pricer.moments import critical_feedback, feedback_ratio, second_moment_growth


def _state(lam, eta, a):
    x = 0.5 * (RZ_BOX.lo + RZ_BOX.hi)
    x[[COL_LAMBDA, COL_ETA, COL_A]] = lam, eta, a
    return x


@pytest.mark.parametrize("lam,eta", [(0.5, 1.5), (2.5, 1.0), (1.3, 1.2)])
def test_critical_feedback_is_where_the_second_moments_start_to_grow(lam, eta):
    # closed form 1 / (eta^2 c'Pc) against the sign of the second-moment system's growth rate (eigenvalues)
    a_star = critical_feedback(lam, eta)
    assert second_moment_growth(_state(lam, eta, a_star * (1 - 1e-4))) < 0
    assert second_moment_growth(_state(lam, eta, a_star * (1 + 1e-4))) > 0
    assert feedback_ratio(_state(lam, eta, a_star), exact=True) == pytest.approx(1.0, rel=1e-12)


def test_tabulated_ratio_matches_the_exact_one():
    from qrh_lib.data import sample_inputs

    X = sample_inputs(400, RZ_BOX, "uniform", seed=5)
    np.testing.assert_allclose(feedback_ratio(X), feedback_ratio(X, exact=True), rtol=1e-7)
    # outside the table's lambda range the ratio is solved directly
    x = _state(7.0, 1.0, 0.3)
    assert feedback_ratio(x) == feedback_ratio(x, exact=True)


def test_published_fits_lie_inside_the_domain():
    # Rosenbaum & Zhang's 19 May 2017 and 10 Sep 2019 SPX/VIX fits (lambda, eta, a): ratios 0.80 and 0.63
    assert feedback_ratio(_state(2.5, 1.485, 0.401)) == pytest.approx(0.801, abs=1e-3)
    assert feedback_ratio(_state(1.717, 1.5, 0.265)) == pytest.approx(0.632, abs=1e-3)
    assert Domain(RZ_BOX).contains(np.stack([_state(2.5, 1.485, 0.401), _state(1.717, 1.5, 0.265)])).all()


def test_domain_check_names_the_input_its_ratio_and_the_critical_feedback():
    dom = Domain(RZ_BOX)
    a_star = critical_feedback(0.5, 1.5)
    inside = _state(0.5, 1.5, STABILITY_MARGIN * a_star * (1 - 1e-9))
    beyond = _state(0.5, 1.5, STABILITY_MARGIN * a_star * (1 + 1e-9))
    assert dom.contains(np.stack([inside, beyond])).tolist() == [True, False]  # the boundary is exact
    dom.check(inside)
    with pytest.raises(ValueError, match=r"X\[0, 2\] \(a\) = .* feedback ratio a / a\* = 0.9 exceeds 0.9 .*"
                                         r"a\*\(lambda=0.5, eta=1.5\) = 0.27343"):
        dom.check(beyond)
    with pytest.raises(ValueError, match=r"\(c\) = 0.5 is outside its allowed range"):
        dom.check(np.where(np.arange(15) == 4, 0.5, inside))
    assert Domain(RZ_BOX, None).contains(beyond[None, :])[0]  # the whole box
    with pytest.raises(ValueError, match="max_feedback_ratio = 1.5 must be in"):
        Domain(RZ_BOX, 1.5)
    assert Domain.from_dict(dom.to_dict()) == dom
