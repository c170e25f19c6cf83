"""lss.data.sources.ensure_data: which data root a chapter gets, and when it is made."""

from __future__ import annotations

import pytest

from lss.data.sources import ensure_data
from lss.errors import DataError
from lss.phantom import read_marker


@pytest.fixture(scope="module")
def phantom3(tmp_path_factory):
    """A complete 3-study phantom, seed 5."""
    root = tmp_path_factory.mktemp("src") / "ph"
    return ensure_data(root, n_studies=3, seed=5, workers=1)


def test_an_absent_folder_gets_a_phantom_of_the_asked_size(phantom3):
    marker = read_marker(phantom3)
    assert (marker["n_studies"], marker["seed"], marker["complete"]) == (3, 5, True)


def test_a_larger_phantom_serves_a_smaller_request_unchanged(phantom3):
    before = (phantom3 / "PHANTOM.json").stat().st_mtime_ns
    assert ensure_data(phantom3, n_studies=2, seed=5) == phantom3
    assert (phantom3 / "PHANTOM.json").stat().st_mtime_ns == before
    assert read_marker(phantom3)["n_studies"] == 3


def test_a_smaller_phantom_or_another_seed_is_a_clear_error(phantom3):
    with pytest.raises(DataError, match=r"n_studies=3, seed=5; asked for n_studies>=4"):
        ensure_data(phantom3, n_studies=4, seed=5)
    with pytest.raises(DataError, match=r"seed=5; asked for n_studies>=3, seed=6"):
        ensure_data(phantom3, n_studies=3, seed=6)


def test_real_tables_without_a_marker_are_used_as_they_are(tmp_path):
    (tmp_path / "train.csv").write_text("study_id\n1\n")
    assert ensure_data(tmp_path, n_studies=200) == tmp_path
    assert read_marker(tmp_path) is None


def test_existing_without_tables_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=rf"No train.csv in {tmp_path}"):
        ensure_data(tmp_path, source="existing")


def test_auto_takes_the_data_attached_to_a_kaggle_notebook(tmp_path, monkeypatch,
                                                           phantom3):
    """DATA_SOURCE = "auto": the competition's data under Kaggle's input folder wins
    over the given folder; without it, the given folder's data, else its phantom; an
    unknown source names the choices."""
    import lss.data.sources as sources

    monkeypatch.setattr(sources, "KAGGLE_INPUT", tmp_path / "input")
    assert sources.attached_kaggle_data() is None
    assert ensure_data(phantom3, source="auto", n_studies=3, seed=5) == phantom3
    real = tmp_path / "mine"
    real.mkdir()
    (real / "train.csv").write_text("study_id\n1\n")
    assert ensure_data(real, source="auto") == real
    attached = tmp_path / "input" / sources.KAGGLE_COMPETITION
    attached.mkdir(parents=True)
    assert sources.attached_kaggle_data() is None  # a folder without train.csv is not it
    (attached / "train.csv").write_text("study_id\n1\n")
    assert ensure_data(real, source="auto") == attached
    assert ensure_data(tmp_path / "absent", source="auto") == attached
    assert not (tmp_path / "absent").exists()  # nothing made beside the attached data
    with pytest.raises(ValueError, match="'auto', 'phantom', 'kaggle', 'existing'"):
        ensure_data(real, source="colab")
