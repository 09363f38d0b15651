"""Readers of native dataset formats (one module per format family) and their registry ``FORMATS``
(``dataset.format``)."""

from ...errors import DatasetError
from ...registry import Registry
from .aperio import KUMAR, MONUSEG
from .common import DatasetFormat, Item, Sample
from .cpm import CPM15_MICCAI
from .hovernet import CONSEP, CPM15_HOVERNET, CPM17
from .masks import TNBC, WBC_NUCLICK
from .points import CRCHISTO, GENERIC

FORMATS: Registry[DatasetFormat] = Registry("dataset format", "dataset.format")
for _format in (CPM15_MICCAI, CPM15_HOVERNET, CPM17, CONSEP, KUMAR, MONUSEG, TNBC, WBC_NUCLICK, CRCHISTO, GENERIC):
    FORMATS.register(_format.name, _format)


def get_format(name: str) -> DatasetFormat:
    """The registered format ``name``; a DatasetError listing the valid ones otherwise."""
    if name not in FORMATS:
        raise DatasetError(f"unknown dataset format {name!r}; valid: {', '.join(FORMATS.names())}")
    return FORMATS.get(name)


__all__ = ["FORMATS", "DatasetError", "DatasetFormat", "Item", "Sample", "get_format"]
