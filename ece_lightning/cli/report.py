"""`ece-report DIR [--out OUT]`: gather every metrics.json under DIR into results.csv, results.md, paper-style
tables (``table_<task>_<metric>.md`` / ``.tex``) and metric-vs-sparsity plots (``analysis.report``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..analysis.report import report
from ..analysis.sweeps import to_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ece-report", description=__doc__)
    parser.add_argument("directory", type=Path, help="run or sweep output directory to search for metrics.json")
    parser.add_argument("--out", type=Path, default=None, help="where to write the results (default: DIRECTORY)")
    args = parser.parse_args(argv)
    try:
        table, written = report(args.directory, args.out)
    except FileNotFoundError as error:
        print(f"ece-report: error: {error}", file=sys.stderr)
        return 2
    print(to_markdown(table))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
