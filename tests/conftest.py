"""Shared test set-up: a small synthetic dataset and surrogate (session-scoped)."""

import pytest


@pytest.fixture(scope="session")
def synthetic_dataset_dir(tmp_path_factory):
    """A synthetic dataset folder in the data/raw/data_<size>/ layout (1000/200/200 surfaces)."""
    from qrh_lib.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "data_synth", n_train=1000, n_val=200, n_test=200, seed=0
    )


@pytest.fixture(scope="session")
def tiny_surrogate(synthetic_dataset_dir):
    """A small surrogate trained for a few epochs on the synthetic dataset (seconds on 2 cores)."""
    from qrh_lib.surrogate.config import TrainConfig
    from qrh_lib.surrogate.training import train_from_folder

    cfg = TrainConfig.from_flat(dict(n_components=8, width=32, n_blocks=2, epochs=15, batch_size=64, learning_rate=3e-3,
                                     seed=1))
    return train_from_folder(synthetic_dataset_dir, cfg)[0]
