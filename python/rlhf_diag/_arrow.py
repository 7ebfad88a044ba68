"""Zero-copy access to string columns as Arrow buffers for the Rust core.

A polars String column is exported to Arrow as a ``large_string`` array: one
int64 offsets buffer and one byte buffer. numpy views of those two buffers
reach Rust without a Python object per string.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from rlhf_diag.exceptions import InputError


def string_buffers(values, name: str = "texts") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(offsets, data)`` numpy views of a string column.

    Parameters
    ----------
    values
        A polars String Series, a pyarrow string array, or a list of str.
    name
        Used in error messages.

    Returns
    -------
    offsets : numpy.ndarray of int64, length n + 1, starting at 0
    data : numpy.ndarray of uint8

    Raises
    ------
    InputError
        If a value is null (naming the first null row and the count).
    """
    if isinstance(values, pl.Series):
        arr = values.to_arrow()
    elif isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        arr = pa.array(list(values), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_large_string(arr.type):
        try:
            arr = arr.cast(pa.large_string())
        except pa.ArrowInvalid as exc:
            raise InputError(f"{name}: expected strings, got {arr.type}") from exc
    if arr.null_count:
        first = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(
            f"{name}: {arr.null_count} null value(s), the first at row {first}"
        )
    _, off_buf, data_buf = arr.buffers()
    n = len(arr)
    offsets = np.frombuffer(off_buf, dtype=np.int64, count=n + 1, offset=8 * arr.offset)
    if offsets[0] != 0:
        # A sliced array: rebase the offsets (a small copy of n + 1 integers)
        # and view the bytes from the first string on.
        start = int(offsets[0])
        data = np.frombuffer(data_buf, dtype=np.uint8)[start : int(offsets[-1])]
        return offsets - start, data
    if data_buf is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buf, dtype=np.uint8)[: int(offsets[-1])]
