"""Progress bars (lss.progress): on in a terminal or a notebook, off in a log, under
``LSS_PROGRESS=0`` and under ``--quiet``; forced on by ``LSS_PROGRESS=1``.

No test waits or times anything: tqdm always draws a bar when it starts and when it
closes, and only those two drawings are looked for.
"""

from __future__ import annotations

import io
import sys

import pytest

import lss.progress as progress
from lss.cli import main
from lss.progress import ENV_VAR, bar, epoch_verbose, quiet, shows


class Terminal(io.StringIO):
    """A stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_setting(monkeypatch):
    """The rule as a user meets it: ``make test`` sets LSS_PROGRESS=0, these tests not."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(progress, "_in_jupyter_kernel", lambda: False)


def _drawn(stream: io.StringIO, *, desc: str = "demo", n: int = 3) -> str:
    list(bar(range(n), desc=desc, file=stream))
    return stream.getvalue()


def test_a_bar_draws_in_a_terminal():
    text = _drawn(Terminal())
    assert "demo" in text and "3/3" in text


def test_the_default_stream_is_stderr_looked_up_at_call_time(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    list(bar(range(2), desc="on stderr"))
    assert "on stderr" in sys.stderr.getvalue() and "2/2" in sys.stderr.getvalue()
    assert epoch_verbose() == 1  # Keras' own bar in a terminal


def test_no_bar_where_nobody_watches(monkeypatch):
    assert _drawn(io.StringIO()) == ""
    assert not shows(file=io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert epoch_verbose() == 2  # a log: one line per epoch


def test_a_notebook_kernel_counts_as_watched(monkeypatch):
    monkeypatch.setattr(progress, "_in_jupyter_kernel", lambda: True)
    assert shows(file=io.StringIO())
    monkeypatch.setenv(ENV_VAR, "0")  # an executed chapter (the book's runner, make test)
    assert not shows(file=io.StringIO())


def test_lss_progress_0_and_quiet_turn_it_off(monkeypatch):
    stream = Terminal()
    list(bar(range(3), desc="quiet", file=stream, enabled=False))
    with quiet():
        list(bar(range(3), desc="quiet", file=stream))
        assert epoch_verbose() == 0
    assert stream.getvalue() == ""
    monkeypatch.setenv(ENV_VAR, "0")
    assert _drawn(stream) == ""
    list(bar(range(3), desc="asked", file=stream, enabled=True))  # the log stays clean
    assert stream.getvalue() == ""
    assert epoch_verbose(False) == 0


def test_lss_progress_1_forces_it_on_but_quiet_still_wins(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1")
    assert "3/3" in _drawn(io.StringIO())
    assert not shows(False)
    with quiet():
        assert _drawn(io.StringIO()) == ""


def test_a_bar_by_hand_counts_updates():
    stream = Terminal()
    with bar(total=4, desc="by hand", file=stream) as b:
        b.update(3)
        b.update()
    assert "4/4" in stream.getvalue()


def test_a_notebook_without_ipywidgets_gets_the_text_bar_without_a_warning(monkeypatch,
                                                                          recwarn):
    from tqdm.std import tqdm

    monkeypatch.setattr(progress, "_in_jupyter_kernel", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    assert progress._tqdm_class(None) is tqdm
    assert not [w for w in recwarn if "IProgress" in str(w.message)]


def test_prepare_draws_a_bar_only_for_windows_to_compute(tiny_root, tmp_path, capsys):
    from lss.config import PreprocessConfig
    from lss.data import TensorCache, build_index

    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "cache")
    index = build_index(tiny_root)
    cache.prepare(index, workers=1, progress=True)
    assert "prepare" in capsys.readouterr().err
    cache.prepare(index, workers=1, progress=True)  # warm: nothing to count
    cache.prepare(index.iloc[:0], workers=1)
    assert capsys.readouterr().err == ""


def _phantom(tmp_path, name, *extra):
    return main(["phantom", "--out", str(tmp_path / name), "--n-studies", "2",
                 "--n-test-studies", "0", "--workers", "1", *extra])


def test_the_command_line_draws_its_bar_and_quiet_silences_it(tmp_path, capsys,
                                                               monkeypatch):
    assert _phantom(tmp_path, "plain") == 0  # not a terminal (captured): nothing new
    out, err = capsys.readouterr()
    assert err == "" and "Wrote a sampled phantom" in out
    monkeypatch.setenv(ENV_VAR, "1")
    assert _phantom(tmp_path, "forced") == 0
    assert "2/2" in capsys.readouterr().err
    assert _phantom(tmp_path, "quiet", "--quiet") == 0
    out, err = capsys.readouterr()
    assert err == "" and "Wrote a sampled phantom" in out


def test_every_long_command_takes_quiet():
    from lss.cli import build_parser

    parser = build_parser()
    for command in ("prepare", "train", "evaluate", "levels", "predict", "experiments",
                    "phantom"):
        args = ["--run", "r"] if command in ("evaluate", "levels") else []
        args += ["--data", "d"] if command == "predict" else []
        assert parser.parse_args([command, *args, "--quiet"]).quiet, command


def test_an_inner_bar_is_wiped_when_it_ends_and_the_outer_one_stays():
    outer_stream, inner_stream = Terminal(), Terminal()
    with bar(total=1, desc="outer", file=outer_stream) as outer:
        inner = bar(range(2), desc="inner", file=inner_stream)
        list(inner)
        outer.update()
    assert outer.leave and not inner.leave
    last = inner_stream.getvalue().rsplit("\r", 1)[-1]
    assert "inner" not in last and not last.strip(" \x1b[A")  # cleared, not left drawn
    assert "1/1" in outer_stream.getvalue()


def test_experiment_lines_are_written_above_the_rows_bar_and_step_it():
    from lss.experiments import _teller

    lines: list[str] = []
    stream = Terminal()
    with bar(total=2, desc="experiments", file=stream) as rows_bar:
        say = _teller(lines.append, rows_bar)
        say("[paper] 1 epochs")
        say("[no_flip] 1 epochs")
        assert rows_bar.n == 2
    assert lines == ["[paper] 1 epochs", "[no_flip] 1 epochs"] and "2/2" in stream.getvalue()
    off = bar(total=1, desc="experiments", enabled=False)
    _teller(lines.append, off)("[roi] 1 epochs")  # the bar off: the line all the same
    _teller(None, off)("never seen")
    assert lines[-1] == "[roi] 1 epochs" and len(lines) == 3
