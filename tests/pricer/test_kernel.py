"""The factor kernel against the exact fractional kernel."""

import numpy as np
import pytest
from scipy.integrate import quad

from qrh_lib.pricer.kernel import RZ_X_STAR, fractional_kernel, geometric_nodes, l2_error


def test_nodes_match_rosenbaum_zhang():
    k = geometric_nodes()  # alpha = 0.51, n = 10, x = 3.92
    # values quoted in qrh-model.md, given there to 3-4 significant digits
    assert k.gamma[0] == pytest.approx(2.48e-3, rel=2e-3)
    assert k.gamma[-1] == pytest.approx(542.3, rel=1e-4)
    assert k.c[0] == pytest.approx(0.0218, rel=2e-3)
    assert k.c[-1] == pytest.approx(9.00, rel=1e-3)
    assert np.all(np.diff(k.gamma) > 0) and np.all(np.diff(k.c) > 0)


@pytest.mark.parametrize("t_min,T", [(0.0, 0.1), (1 / 365, 1.0)])
def test_l2_error_closed_form_matches_quadrature(t_min, T):
    k = geometric_nodes()
    # substitution t = t_min + (T - t_min) s^50 removes the t^(2 alpha - 2) singularity at 0
    span = T - t_min

    def f(s):
        t = t_min + span * s**50
        return (k(t) - fractional_kernel(t)) ** 2 * 50 * span * s**49

    val, _ = quad(f, 0, 1, limit=500, epsabs=1e-13)
    assert l2_error(k, T, t_min) == pytest.approx(np.sqrt(val), rel=1e-6)


def test_kernel_error_decreases_with_n():
    errs = [l2_error(geometric_nodes(n=n), T=1.0, t_min=1 / 365) for n in sorted(RZ_X_STAR)]
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False)), errs
    t = np.geomspace(1 / 365, 1.0, 50)
    sup = [np.max(np.abs(geometric_nodes(n=n)(t) / fractional_kernel(t) - 1)) for n in sorted(RZ_X_STAR)]
    assert all(a > b for a, b in zip(sup, sup[1:], strict=False)), sup
    assert sup[1] < 0.10  # n = 10: within 10% of the exact kernel from a day to a year


def test_kernel_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        geometric_nodes(alpha=0.4)
    with pytest.raises(ValueError, match="x"):
        geometric_nodes(n=7)
