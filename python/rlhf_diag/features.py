"""Text features of response texts: lengths, markdown structure and phrases.

Twelve counts per text (see ``docs/features.md`` for the exact rules),
computed by the Rust core in one scan per text, in parallel over texts. The
texts reach Rust as the two buffers (offsets, bytes) of an Arrow
``large_string`` array, viewed by numpy without a copy and without a Python
object per string. (Polars keeps strings as views, so its ``to_arrow`` export
writes those two buffers once; a pyarrow ``large_string`` array, sliced or
not, is read in place.)
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rlhf_diag import _core
from rlhf_diag._arrow import string_buffers
from rlhf_diag.exceptions import InputError

FEATURES: tuple[str, ...] = tuple(_core.feature_names())
"""Column names of :func:`text_features`, in order."""

APOLOGY_PHRASES: tuple[str, ...] = tuple(_core.phrase_lists()[0])
"""Phrases counted as apologies (ASCII case-insensitive)."""

REFUSAL_PHRASES: tuple[str, ...] = tuple(_core.phrase_lists()[1])
"""Phrases counted as refusals (ASCII case-insensitive; ``'`` also U+2019)."""

__all__ = ["APOLOGY_PHRASES", "FEATURES", "REFUSAL_PHRASES", "text_features"]


def _check_n_jobs(n_jobs: int | None) -> int | None:
    """Thread count for the core: None for rayon's default pool."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(
        n_jobs, (int, np.integer)
    ):
        raise InputError(f"n_jobs: expected an int or None, got {n_jobs!r}")
    if n_jobs == -1:
        return None
    if n_jobs < 1:
        raise InputError(f"n_jobs: expected a positive int, -1 or None, got {n_jobs}")
    return int(n_jobs)


def text_features(texts, *, n_jobs: int | None = None) -> pl.DataFrame:
    """Count length, markdown and phrase features of each text.

    Parameters
    ----------
    texts : polars.Series, pyarrow.Array, pyarrow.ChunkedArray or list of str
        The texts, as UTF-8 strings (``string``, ``large_string`` or
        ``string_view``); no nulls.
    n_jobs : int, optional
        Threads to use. ``None`` or ``-1``: rayon's default pool (one thread
        per core, or ``RAYON_NUM_THREADS``).

    Returns
    -------
    polars.DataFrame
        One row per text and one UInt32 column per name in :data:`FEATURES`:
        ``chars, words, headers, ordered_items, unordered_items, bold,
        code_blocks, table_rows, links, emojis, apologies, refusals``.

    Raises
    ------
    InputError
        For a null text (naming the first null row and the count), a
        non-string input, or a bad ``n_jobs``.

    Notes
    -----
    Markdown counts skip fenced code; characters, words, emojis and phrases
    count over the whole text. Whitespace is Unicode ``White_Space``, phrase
    matching folds ASCII case only. ``docs/features.md`` gives every rule as
    a regular expression; ``rlhf_diag._reference.reference_features`` is the
    slow Python restatement that tests check this against.

    Examples
    --------
    >>> row = text_features(["# Title\\n**Sorry**, I can't."]).row(0, named=True)
    >>> row["headers"], row["bold"], row["apologies"], row["refusals"]
    (1, 1, 1, 1)
    """
    threads = _check_n_jobs(n_jobs)
    offsets, data = string_buffers(texts, "texts")
    counts = _core.text_features(offsets, data, threads)
    return pl.DataFrame(
        {name: counts[:, k] for k, name in enumerate(FEATURES)},
        schema={name: pl.UInt32 for name in FEATURES},
    )
