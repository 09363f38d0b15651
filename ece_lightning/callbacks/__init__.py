"""Lightning callbacks shared by the task modules, and their registry ``CALLBACKS``: each entry of the
``callbacks`` config is named by its key (``callbacks.checkpoint: {...}``) and holds its arguments."""

from pytorch_lightning import Callback
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

from ..registry import Registry
from .dynamics import LossDynamics
from .predictions import TestPredictions
from .progress import RunProgressBar
from .schedules import LossSchedules, scheduled_losses
from .test_curve import TestCurve

CALLBACKS: Registry[Callback] = Registry("callback", "callbacks.<entry>")
for _name, _callback in (("checkpoint", ModelCheckpoint), ("progress_bar", RunProgressBar),
                         ("loss_schedules", LossSchedules), ("test_predictions", TestPredictions),
                         ("loss_dynamics", LossDynamics), ("test_curve", TestCurve),
                         ("early_stopping", EarlyStopping), ("lr_monitor", LearningRateMonitor)):
    CALLBACKS.register(_name, _callback)

__all__ = ["CALLBACKS", "LossDynamics", "LossSchedules", "RunProgressBar", "TestCurve", "TestPredictions",
           "scheduled_losses"]
