"""`ece-prepare dataset=<name> [paths.raw=<dir>] [force=true] [overlays=N]`: read a raw dataset in its native layout,
validate it, split it and write the cache the DataModule reads; print the summary; with ``overlays=N``
write instance outlines drawn on the first N images to ``overlay_dir``.

Re-running is a no-op while the cache is current. Bad input stops with one message naming the file and
the problem (exit status 2), and leaves no cache behind.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ..config import CONFIG_DIR, apply_raw_root
from ..data.prepare import PreparedDataset
from ..errors import DatasetError, config_key
from .common import user_errors


def prepare(cfg: DictConfig) -> PreparedDataset:
    from ..data.sources import SOURCES, PreparedSource
    from ..runs.assembly import plain

    apply_raw_root(cfg)
    options = plain(cfg.dataset)
    if options.get("source") != "prepared":
        raise DatasetError(f"dataset={cfg.dataset.name} is {options.get('source')!r} (generated on the fly): "
                           "nothing to prepare")
    factory = SOURCES.get("prepared")
    keys = ("name", "format", "root", "cache_dir", "split", "strict", "reader")
    with config_key("dataset"):
        source: PreparedSource = factory(**{key: options[key] for key in keys if key in options})
    return source.prepare(force=bool(cfg.get("force", False)))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="prepare")
def main(cfg: DictConfig) -> None:
    with user_errors("ece-prepare"):
        prepared = prepare(cfg)
    print(prepared.summary())
    count = int(cfg.get("overlays", 0))
    if count > 0:
        from ..drawing import save_overlay

        folder = Path(cfg.overlay_dir)
        for image_id in sorted(s["id"] for s in prepared.manifest["samples"])[:count]:
            sample = prepared.load(image_id)
            save_overlay(folder / f"{image_id}.png", sample.image, sample.instances, sample.points)
        print(f"  overlays of {min(count, len(prepared.manifest['samples']))} images -> {folder}")


if __name__ == "__main__":
    main()
