"""Readers of native dataset formats (one module per format family) and their registry ``FORMATS``."""

from .aperio import KUMAR, MONUSEG
from .common import DatasetError, DatasetFormat, Item, Sample
from .cpm import CPM15_MICCAI
from .hovernet import CONSEP, CPM15_HOVERNET, CPM17
from .masks import TNBC, WBC_NUCLICK
from .points import CRCHISTO, GENERIC

FORMATS: dict[str, DatasetFormat] = {
    fmt.name: fmt
    for fmt in (CPM15_MICCAI, CPM15_HOVERNET, CPM17, CONSEP, KUMAR, MONUSEG, TNBC, WBC_NUCLICK, CRCHISTO, GENERIC)
}


def get_format(name: str) -> DatasetFormat:
    if name not in FORMATS:
        raise DatasetError(f"unknown dataset format {name!r}; valid: {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


__all__ = ["FORMATS", "DatasetError", "DatasetFormat", "Item", "Sample", "get_format"]
