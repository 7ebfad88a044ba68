"""Zero-copy access to string columns as Arrow buffers for the Rust core.

A polars String column is exported to Arrow as a ``large_string`` array: one
int64 offsets buffer and one byte buffer. numpy views of those two buffers
reach Rust without a Python object per string. Every string-taking binding
goes through :func:`string_buffers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from rlhf_diag.exceptions import InputError


def _to_large_string(values, name: str) -> pa.LargeStringArray:
    """One contiguous ``large_string`` array holding ``values``."""
    if isinstance(values, pl.Series):
        if isinstance(values.dtype, (pl.Categorical, pl.Enum)):
            values = values.cast(pl.String)
        arr = values.to_arrow()
    elif isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    elif isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        try:
            arr = pa.array(values, type=pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{name}: expected a list of str ({exc})") from exc
    else:
        raise InputError(
            f"{name}: expected a polars Series, a pyarrow array or a list of str, "
            f"got {type(values).__name__}"
        )
    if not (
        pa.types.is_string(arr.type)
        or pa.types.is_large_string(arr.type)
        or pa.types.is_string_view(arr.type)
    ):
        raise InputError(f"{name}: expected strings, got Arrow type {arr.type}")
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def string_buffers(values, name: str = "texts") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(offsets, data)`` numpy views of a string column.

    Parameters
    ----------
    values
        A polars String (or Categorical) Series, a pyarrow string,
        large_string or string_view array (chunked or sliced), or a list of
        str.
    name
        Used in error messages.

    Returns
    -------
    offsets : numpy.ndarray of int64, length n + 1
        A view of the Arrow offsets. A sliced array keeps its parent's
        buffers, so the first offset need not be 0; the core accepts that.
    data : numpy.ndarray of uint8
        A view of the whole byte buffer.

    Raises
    ------
    InputError
        For a null value (naming the first null row and the count) or a
        value that is not a string.
    """
    arr = _to_large_string(values, name)
    if arr.null_count:
        nulls = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
        raise InputError(
            f"{name}: {arr.null_count} null value(s); the first is row {int(nulls[0])}"
        )
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    if offsets_buf is None or n == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1, offset=8 * arr.offset)
    if data_buf is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buf, dtype=np.uint8)
