import pytest

from ece_lightning.analysis.examples import make_example_sweep


@pytest.fixture(scope="session")
def example_sweep(tmp_path_factory):
    """A finished tiny sweep (CE/ECE x 0.5/1.0, LossDynamics on), made through ece-train."""
    return make_example_sweep(tmp_path_factory.mktemp("example_sweep"))
