"""Progress bars for the long steps: one rule for when they show, one function to make one.

A bar shows where somebody watches: in a terminal, and in an interactive Jupyter kernel
(a notebook or Colab). It stays off where nobody does -- a log file, a pipe, CI -- so
that a log holds the lines lss prints and not hundreds of carriage-return redraws.
Executed chapters are notebooks run by a machine, which this module cannot tell from a
person's; the book's runner and ``make test`` set ``LSS_PROGRESS=0`` so that the pages
built from them show no bars.

The rule of :func:`shows`, first match wins:

1. ``progress=False`` (the command line's ``--quiet``): off;
2. ``LSS_PROGRESS=0`` in the environment: off;
3. inside :func:`quiet` (``lss ... --quiet`` around library code it cannot reach): off;
4. ``progress=True`` or ``LSS_PROGRESS=1``: on;
5. otherwise (``progress=None``): on when the bar's stream (``sys.stderr``) is a
   terminal or this is an interactive Jupyter kernel.

The bars are :mod:`tqdm`'s: :func:`bar` takes :func:`tqdm.auto.tqdm`'s widget in a
notebook that has ``ipywidgets`` and tqdm's text bar elsewhere; a bar that is off is
tqdm's ``disable=True`` bar, which iterates (and takes ``update``) and writes nothing.

Examples
--------
>>> from lss.progress import bar, epoch_verbose
>>> sum(bar(range(4), desc="adding", enabled=False))
6
>>> epoch_verbose(False)
0
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["bar", "shows", "epoch_verbose", "quiet", "ENV_VAR"]

#: The environment variable: ``0`` turns every bar off, ``1`` on (``--quiet`` still wins).
ENV_VAR = "LSS_PROGRESS"

_quiet_depth = 0  # > 0 inside quiet()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Within the block, every bar whose caller left the choice to the rule is off.

    ``lss <command> --quiet`` runs its command inside this, so that the bars of library
    code it calls without a ``progress`` option (the cache that :func:`lss.train.train`
    fills, for example) stay off too.
    """
    global _quiet_depth
    _quiet_depth += 1
    try:
        yield
    finally:
        _quiet_depth -= 1


def _in_jupyter_kernel() -> bool:
    """True in a Jupyter kernel (IPython's ``IPKernelApp``), never importing IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 -- a half-started shell: no bar rather than a crash
        return False


def shows(progress: bool | None = None, *, file: IO[str] | None = None) -> bool:
    """Whether a bar shows: the rule of the module docstring.

    Parameters
    ----------
    progress : bool, optional
        The caller's choice: False off, True on (unless ``LSS_PROGRESS=0`` or
        :func:`quiet`), None the rule.
    file : text stream, optional
        Where the bar would write (default ``sys.stderr``, looked up at call time).

    Examples
    --------
    >>> shows(False)
    False
    """
    if progress is False:
        return False
    env = os.environ.get(ENV_VAR, "").strip()
    if env == "0" or _quiet_depth:
        return False
    if progress or env == "1":
        return True
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        tty = False
    return tty or _in_jupyter_kernel()


def _tqdm_class(file: IO[str] | None) -> type:
    """tqdm's notebook widget in a Jupyter kernel with ipywidgets, else its text bar.

    As :mod:`tqdm.auto` chooses, but without its warning where ipywidgets is missing
    (the text bar then works in a notebook too), and imported only for a bar that shows.
    """
    if file is None and _in_jupyter_kernel():
        try:
            import ipywidgets  # noqa: F401 -- only to know whether the widget can draw
            from tqdm.notebook import tqdm as notebook_tqdm
        except ImportError:
            pass
        else:
            return notebook_tqdm
    from tqdm.std import tqdm

    return tqdm


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None,
        enabled: bool | None = None, file: IO[str] | None = None, unit: str = "it") -> Any:
    """A tqdm bar over ``iterable`` (or, with ``iterable=None``, one to ``update()`` by hand).

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate; None for a bar advanced with ``.update(n)`` (use it in a
        ``with`` block, or call ``.close()``).
    desc : str
        The bar's label, e.g. ``"prepare"``.
    total : int, optional
        The number of items (default ``len(iterable)`` where it has one).
    enabled : bool, optional
        The caller's ``progress`` option: see :func:`shows` (None: the rule).
    file : text stream, optional
        Where to write (default ``sys.stderr``; a notebook's widget ignores it).
    unit : str
        What one item is, e.g. ``"study"``.

    Returns
    -------
    tqdm
        It iterates like ``iterable``; when off it writes nothing. A bar started while
        another draws (the cache a training inside an experiment fills) is wiped when
        it ends; the outer one stays, so a long run leaves one line per step, not one
        per inner bar.

    Examples
    --------
    >>> with bar(total=3, desc="by hand", enabled=False) as b:
    ...     b.update(3)  # writes nothing: the bar is off
    """
    on = shows(enabled, file=file)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not on:
        from tqdm.std import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=True)
    from tqdm.std import tqdm

    nested = len(tqdm._instances) > 0  # the bars drawing now (tqdm's own registry)
    cls = _tqdm_class(file)
    return cls(iterable, total=total, desc=desc, file=file, unit=unit, dynamic_ncols=True,
               leave=not nested)


def epoch_verbose(progress: bool | None = None) -> int:
    """Keras' ``verbose`` for the epochs of a command: 1, its progress bar, where the rule
    of :func:`shows` says a bar shows; 2, one line per epoch, where it does not (a log,
    CI); 0, nothing, for ``progress=False`` (``--quiet``) or inside :func:`quiet`.

    Examples
    --------
    >>> epoch_verbose(False)
    0
    """
    if progress is False or _quiet_depth:
        return 0
    return 1 if shows(progress) else 2
