"""Small pieces shared by the report pages."""

from __future__ import annotations

from rlhf_diag.report.page import Page

NO_PLOTS = ("Plots are left out: matplotlib is not installed "
            "(pip install 'rlhf_diag[report]').")


def version() -> str:
    from rlhf_diag import __version__

    return __version__


def footer(doc: str) -> str:
    return f"rlhf_diag {version()} · every statistic is in the --json output ({doc})"


def no_plots_note(page: Page, figures: bool) -> None:
    if not figures:
        page.sections[0].paragraph(NO_PLOTS, muted=True)


def num(value, digits: int = 3) -> str | None:
    """A number to ``digits`` decimals as text, None (an em dash) for None."""
    if value is None:
        return None
    return f"{value:.{digits}f}"


def interval(lo, hi, digits: int = 3) -> str:
    """``[lo, hi]``; a missing end shows as -inf / +inf."""
    if lo is None and hi is None:
        return "—"
    a = "-inf" if lo is None else f"{lo:.{digits}f}"
    b = "+inf" if hi is None else f"{hi:.{digits}f}"
    return f"[{a}, {b}]"
