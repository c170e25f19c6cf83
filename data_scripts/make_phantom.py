"""Write the synthetic DICOM phantom (RSNA 2024 Kaggle layout) to a directory.

Examples
--------
Sampled studies (the default)::

    python data_scripts/make_phantom.py --out data/phantom --n-studies 200 --seed 0

Images behind real label tables (the tables are copied verbatim for those studies)::

    python data_scripts/make_phantom.py --out data/phantom-real \\
        --tables ../shared/rsna2024-labels --studies 5
    python data_scripts/make_phantom.py --out data/phantom-real \\
        --tables ../shared/rsna2024-labels --study-ids 4003253 4646740

A bar counts the studies written in a terminal (none in a log, or with ``--quiet``).
"""

from __future__ import annotations

import sys

from lss.cli import main

if __name__ == "__main__":
    # The same as `lss phantom ...` (its options: lss phantom --help).
    sys.exit(main(["phantom", *sys.argv[1:]]))
