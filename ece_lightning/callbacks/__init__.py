"""Lightning callbacks shared by the task modules."""

from .annealing import ECEAnnealing, scheduled_losses
from .dynamics import LossDynamics
from .predictions import TestPredictions
from .test_curve import TestCurve

__all__ = ["ECEAnnealing", "LossDynamics", "TestCurve", "TestPredictions", "scheduled_losses"]
