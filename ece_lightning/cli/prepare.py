"""`ece-prepare dataset=<name> [paths.raw=<dir>] [force=true] [overlays=N]`: read a raw dataset in its native layout,
validate it, split it and write the cache the DataModule reads; print the summary; with ``overlays=N``
write instance outlines drawn on the first N images to ``overlay_dir``.

Re-running is a no-op while the cache is current. Bad input stops with one message naming the file and
the problem (exit status 2), and leaves no cache behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR, apply_raw_root
from ..data.prepare import PreparedDataset, prepare_dataset
from ..data.readers import DatasetError
from ..data.sources import tqdm_progress


def prepare(cfg: DictConfig) -> PreparedDataset:
    apply_raw_root(cfg)
    dataset = cfg.dataset
    if dataset.get("source") != "prepared":
        raise DatasetError(f"dataset={dataset.name} is {dataset.get('source')!r} (generated on the fly): "
                           "nothing to prepare")
    return prepare_dataset(
        name=dataset.name, format=dataset.format, root=dataset.root, cache_dir=dataset.cache_dir,
        split=_plain(dataset.get("split")), strict=bool(dataset.get("strict", True)),
        force=bool(cfg.get("force", False)), options=_plain(dataset.get("reader")),
        progress=tqdm_progress(f"preparing {dataset.name}"))


def _plain(node: DictConfig | None) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="prepare")
def main(cfg: DictConfig) -> None:
    try:
        prepared = prepare(cfg)
    except DatasetError as error:
        print(f"ece-prepare: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(prepared.summary())
    count = int(cfg.get("overlays", 0))
    if count > 0:
        from ..data.overlay import save_overlay

        folder = Path(cfg.overlay_dir)
        for image_id in sorted(s["id"] for s in prepared.manifest["samples"])[:count]:
            sample = prepared.load(image_id)
            save_overlay(folder / f"{image_id}.png", sample.image, sample.instances, sample.points)
        print(f"  overlays of {min(count, len(prepared.manifest['samples']))} images -> {folder}")


if __name__ == "__main__":
    main()
