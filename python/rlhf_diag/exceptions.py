"""Exceptions and warnings of rlhf_diag.

Every error the Rust core can raise maps to one class here (the binding crate
looks them up by name). Input problems also inherit :class:`ValueError`, so
code that already catches ``ValueError`` keeps working.

Non-fatal conditions come back from the core as status fields and are raised
once, from Python, as one of the warning classes below.
"""

from __future__ import annotations


class RlhfDiagError(Exception):
    """Base class of every error raised by rlhf_diag."""


class InputError(RlhfDiagError, ValueError):
    """Input that breaks a documented contract: a missing column, a bad row,
    mismatched array lengths. The message names the row, field or array."""


class DataFormatError(InputError):
    """A file that cannot be read as the format asked for (or detected)."""


class FitError(RlhfDiagError, ValueError):
    """A model that has no answer for these data, with the reason."""


class UndefinedStatisticError(RlhfDiagError, ValueError):
    """A statistic that cannot be computed from these data (for example a rate
    with no eligible items). Raised instead of returning NaN or 0."""


class RlhfDiagWarning(UserWarning):
    """Base class of every warning raised by rlhf_diag."""


class DataQualityWarning(RlhfDiagWarning):
    """Rows that were skipped, identical pairs, duplicates, ties."""


class SeparationWarning(RlhfDiagWarning):
    """A fit whose unpenalised maximum-likelihood estimate is infinite along a
    named feature or item (perfect or quasi-complete separation)."""


class ConvergenceWarning(RlhfDiagWarning):
    """An iterative fit that stopped before reaching its tolerance."""
