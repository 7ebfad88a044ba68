"""rlhf_diag: audit RLHF preference data on a Rust core.

The public API is re-exported here; see the README for a tour.
"""

from __future__ import annotations

from rlhf_diag._core import __version__

__all__ = ["__version__"]
