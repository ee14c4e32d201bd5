"""Compare two runs case by case and apply the gates (``runs.py``: ``compare_runs``, the
comparison.json of design.md), with the paired statistics, gates and listings beside it.

The names below are loaded on first use: the comparison needs scipy (about a second to import),
and ``replaygate run`` reaches into this package only for ``provenance.shares``, so a run that
compares nothing does not pay for scipy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["compare_runs", "paired_comparisons", "Paired", "resamples_of"]

if TYPE_CHECKING:
    from .runs import Paired, compare_runs, paired_comparisons, resamples_of  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runs

        return getattr(runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
