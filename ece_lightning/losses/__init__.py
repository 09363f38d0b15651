"""Loss registry: a config names an entry (``loss.name``) and passes its arguments.

Every loss is a pure-torch ``nn.Module`` called as ``loss(logits, target)``. A loss that keeps state per
training pixel (ELR's temporal ensembling) sets ``requires_pixels = True``, is called as
``loss(logits, target, pixels=...)`` with the samples' dataset-wide pixel ids, and exposes
``allocate(num_pixels, num_channels)``, which the module calls when it sees its training set; one with a
training schedule exposes ``set_progress(epoch, max_epochs)``, which the ``LossSchedules`` callback drives.
Every entry takes binary logits too, so it can serve as the objectness loss of detection (``DetectionLoss``).
"""

from .ce import CrossEntropy
from .detection import DetectionLoss
from .ece import ExclusiveCrossEntropy
from .elr import EarlyLearningRegularization
from .focal import FocalLoss
from .pu import PositiveUnlabeledRisk
from .registry import LOSSES, build_loss
from .schedules import SigmoidSchedule

__all__ = ["LOSSES", "CrossEntropy", "DetectionLoss", "EarlyLearningRegularization", "ExclusiveCrossEntropy",
           "FocalLoss", "PositiveUnlabeledRisk", "SigmoidSchedule", "build_loss"]
