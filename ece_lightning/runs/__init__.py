"""Runs: assembling a run from its config (``assembly``), training it (``training``), its output contract
(``outputs``), what its folder says about it (``state``), launch checks and GPU pools (``launch``, ``gpu_pool``)
and experiment loggers (``loggers``). The command-line tools are thin shells over these."""
