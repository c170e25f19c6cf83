"""What the book's static pages state about figures agrees with the package's records."""

from __future__ import annotations

import re
from pathlib import Path

from lss.config import PAPER_RESULTS, REAL_CLASS_COUNTS, REAL_MAJORITY_SHARE

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_the_landing_page_box_quotes_the_papers_figures_as_recorded():
    text = (BOOK / "intro.md").read_text()
    assert "Deep Learning for\nDetection and Severity Classification of Lumbar Spinal " \
           "Stenosis in MRI Scans" in text
    for author in ("Dhopavkar", "Shende", "Ahirkar", "Bodelkar", "Kale", "Barapatre"):
        assert author in text
    box = text[text.index("Its stated results"):]
    numbers = [float(n) for n in re.findall(r"\d+\.\d+", box[:box.index(":::")])]
    assert numbers == [PAPER_RESULTS["train_loss_first_epoch"],
                       PAPER_RESULTS["train_loss_last_epoch"],
                       PAPER_RESULTS["val_loss_first_epoch"],
                       PAPER_RESULTS["val_loss_last_epoch"],
                       round(100 * PAPER_RESULTS["val_accuracy"], 2)]


def test_the_landing_page_majority_share_is_the_real_labels():
    text = (BOOK / "intro.md").read_text()
    n = sum(REAL_CLASS_COUNTS)
    assert f"{REAL_CLASS_COUNTS[0]} of the {n:,} labelled" in text
    assert f"**{round(100 * REAL_MAJORITY_SHARE)} %**" in text


def test_no_static_page_speaks_of_how_the_project_is_run():
    for page in BOOK.glob("*.md"):
        text = page.read_text().lower()
        for phrase in ("the issue behind", "this project was lent", "issue asks"):
            assert phrase not in text, f"{page.name}: '{phrase}'"
