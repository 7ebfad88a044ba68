"""Text features of response texts: lengths, markdown structure and phrases.

Twelve counts per text (see ``docs/features.md`` for the exact rules),
computed by the Rust core in one pass per text, in parallel over texts. The
texts reach Rust as the two Arrow buffers of a ``large_string`` array, viewed
by numpy without a copy and without a Python object per string.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from rlhf_diag import _core
from rlhf_diag.exceptions import InputError

FEATURES: tuple[str, ...] = tuple(_core.feature_names())
"""Column names of :func:`text_features`, in order."""

APOLOGY_PHRASES: tuple[str, ...] = tuple(_core.phrase_lists()[0])
"""Phrases counted as apologies (ASCII case-insensitive)."""

REFUSAL_PHRASES: tuple[str, ...] = tuple(_core.phrase_lists()[1])
"""Phrases counted as refusals (ASCII case-insensitive; ``'`` also U+2019)."""

__all__ = ["APOLOGY_PHRASES", "FEATURES", "REFUSAL_PHRASES", "text_features"]


def _to_large_string(texts) -> pa.LargeStringArray:
    """One contiguous ``large_string`` array holding ``texts``."""
    if isinstance(texts, pl.Series):
        arr = texts.to_arrow()
    elif isinstance(texts, (pa.Array, pa.ChunkedArray)):
        arr = texts
    elif isinstance(texts, Sequence) and not isinstance(texts, (str, bytes)):
        try:
            arr = pa.array(texts, type=pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"texts: expected a list of str ({exc})") from exc
    else:
        raise InputError(
            "texts: expected a polars Series, a pyarrow array or a list of str, "
            f"got {type(texts).__name__}"
        )
    if not (
        pa.types.is_string(arr.type)
        or pa.types.is_large_string(arr.type)
        or pa.types.is_string_view(arr.type)
    ):
        raise InputError(f"texts: expected strings, got Arrow type {arr.type}")
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _buffers(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy numpy views of the offsets (n + 1) and the byte buffer.

    A sliced array keeps its parent's buffers: its offsets start at
    ``arr.offset`` and need not start at 0, which the core accepts.
    """
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    if offsets_buf is None or n == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(
        offsets_buf, dtype=np.int64, count=n + 1, offset=8 * arr.offset
    )
    if data_buf is None:
        data = np.zeros(0, dtype=np.uint8)
    else:
        data = np.frombuffer(data_buf, dtype=np.uint8)
    return offsets, data


def _check_n_jobs(n_jobs: int | None) -> int | None:
    if n_jobs is None or n_jobs == -1:
        return None
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(
        n_jobs, (int, np.integer)
    ):
        raise InputError(f"n_jobs: expected an int or None, got {n_jobs!r}")
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
    arr = _to_large_string(texts)
    if arr.null_count:
        nulls = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
        raise InputError(
            f"texts: {arr.null_count} null value(s); the first is row {int(nulls[0])}"
        )
    offsets, data = _buffers(arr)
    counts = _core.text_features(offsets, data, threads)
    return pl.DataFrame(
        {name: counts[:, k] for k, name in enumerate(FEATURES)},
        schema={name: pl.UInt32 for name in FEATURES},
    )
