"""The 15 inputs by name: the view over X and the column numbers."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from qrh_lib.params import (
    COL_A,
    COL_B,
    COL_C,
    COL_ETA,
    COL_LAMBDA,
    COL_Z0,
    N_FACTORS,
    N_INPUTS,
    PARAM_NAMES,
    Inputs,
)

X = np.arange(3.0 * N_INPUTS).reshape(3, N_INPUTS)


def test_column_numbers_follow_the_parameter_names():
    assert [PARAM_NAMES[j] for j in (COL_LAMBDA, COL_ETA, COL_A, COL_B, COL_C)] == ["lambda", "eta", "a", "b", "c"]
    assert list(PARAM_NAMES[COL_Z0]) == [f"z0_{i}" for i in range(1, N_FACTORS + 1)]


@pytest.mark.parametrize("x", [X, X[1]], ids=["batch", "one row"])
def test_inputs_are_views_of_the_named_columns(x):
    v = Inputs(x)
    for name, col in [("lam", COL_LAMBDA), ("eta", COL_ETA), ("a", COL_A), ("b", COL_B), ("c", COL_C),
                      ("z0", COL_Z0)]:
        got = getattr(v, name)
        np.testing.assert_array_equal(got, x[..., col])
        assert np.shares_memory(got, x)  # a view, not a copy
    assert v.z0.shape == x.shape[:-1] + (N_FACTORS,)


def test_writes_through_the_view_reach_x_and_the_view_is_frozen():
    x = X.copy()
    Inputs(x).a[:] = -1.0
    assert np.all(x[:, COL_A] == -1.0) and np.all(np.delete(x, COL_A, axis=1) == np.delete(X, COL_A, axis=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        Inputs(x).X = X


def test_inputs_of_a_tensor():
    v = Inputs(tf.constant(X))
    np.testing.assert_array_equal(v.eta.numpy(), X[:, COL_ETA])
    np.testing.assert_array_equal(v.z0.numpy(), X[:, COL_Z0])
