"""HTML reports: the page builder escapes everything, the audit page shows the
result's own figures and quotes example rows, dataset text planted with
script runs nothing in a real browser, and the walkthrough notebook runs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest

from rlhf_diag.audit import audit
from rlhf_diag.cli import main
from rlhf_diag.exceptions import DataQualityWarning, InputError, SeparationWarning
from rlhf_diag.pairs import load_pairs
from rlhf_diag.report import Page, build_page, plots, write_report
from rlhf_diag.report.page import CSP, clip, escape_text

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"

# Hostile dataset text: each payload would change the page if it ran.
SCRIPT = "<script>document.title='PWNED'</script>"
IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
SVG = "<svg onload=\"document.body.setAttribute('data-pwned','svg')\"></svg>"
BREAKOUT = "</pre></div></section><script>document.title='PWNED'</script>"
IFRAME = "<iframe srcdoc=\"<script>parent.document.title='PWNED'</script>\"></iframe>"
ATTR = "\" onmouseover=\"document.title='PWNED'\" x='<b>not bold</b>"
STYLE = "<style>body { display: none }</style>"
COMMENT = "<!-- the rest of the page is a comment"
PAYLOADS = [SCRIPT, IMG, SVG, BREAKOUT, IFRAME, ATTR, STYLE, COMMENT]
# A file name is dataset text too (no "/" allowed in it).
EVIL_NAME = "<img src=x onerror=document.body.setAttribute('data-pwned','path')>.jsonl"


def quiet_audit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        warnings.simplefilter("ignore", SeparationWarning)
        return audit(data, **kw)


@pytest.fixture
def hostile(tmp_path):
    """A pairs file whose texts are the payloads, placed where the audit
    quotes them: an identical pair, a duplicate, an empty response and a
    conflicting pair, plus plain pairs for the fit."""
    rows = [
        {"prompt": IMG, "chosen": SCRIPT, "rejected": SCRIPT},  # identical
        {"prompt": "q1", "chosen": BREAKOUT + " and more words", "rejected": SVG},
        {"prompt": "q1", "chosen": BREAKOUT + " and more words", "rejected": SVG},
        {"prompt": COMMENT, "chosen": STYLE, "rejected": ""},  # empty rejected
        {"prompt": "q4", "chosen": IFRAME, "rejected": ATTR},  # conflicting ...
        {"prompt": "q4", "chosen": ATTR, "rejected": IFRAME},  # ... with row 4
    ]
    rows += [{"prompt": f"p{i}", "chosen": "a fairly long answer " * (i + 2),
              "rejected": "short " * (1 + i % 3)} for i in range(8)]
    path = tmp_path / EVIL_NAME
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ps = load_pairs(path)
    return ps, quiet_audit(ps)


def images(doc: str) -> list[bytes]:
    return [base64.b64decode(m) for m in
            re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', doc)]


def figure_texts(svg: bytes) -> list[str]:
    """The texts drawn in a figure (matplotlib's SVG writer draws text as
    paths and records each string in a comment before it)."""
    return [t.decode() for t in re.findall(rb"<!-- (.*?) -->", svg, re.DOTALL)]


class _Quoted(HTMLParser):
    """Collects the text of every ``<pre class="quoted">`` and the title."""

    def __init__(self):
        super().__init__()
        self.quoted, self.title, self._in = [], "", None

    def handle_starttag(self, tag, attrs):
        if tag == "pre" and ("class", "quoted") in attrs:
            self._in = "pre"
            self.quoted.append("")
        elif tag == "title":
            self._in = "title"

    def handle_endtag(self, tag):
        if tag in ("pre", "title"):
            self._in = None

    def handle_data(self, data):
        if self._in == "pre":
            self.quoted[-1] += data
        elif self._in == "title":
            self.title += data


def parse(doc: str) -> _Quoted:
    p = _Quoted()
    p.feed(doc)
    return p


# ------------------------------------------------------------------ builder


def test_escape_text_escapes_markup_and_shows_control_characters():
    assert escape_text("<a href='x'>&\x00\x1b\x7f\n\t") == (
        "&lt;a href=&#x27;x&#x27;&gt;&amp;\u2400\u241b\u2421\n\t")
    # Bidi overrides are named; ordinary right-to-left text is left alone.
    assert escape_text("a\u202eb\u2066c שלום") == "a⟨U+202E⟩b⟨U+2066⟩c שלום"


def test_clip_keeps_head_or_tail_and_counts_the_rest():
    assert clip("abcdef", 4) == ("abcd", 2)
    assert clip("abcdef", 4, "tail") == ("cdef", 2)
    assert clip("abc", 4) == ("abc", 0)
    with pytest.raises(ValueError):
        clip("abc", 0)


def test_page_escapes_every_string_it_is_given():
    page = Page(SCRIPT, subtitle=IMG, footer=SVG)
    s = page.section(BREAKOUT)
    s.paragraph(SCRIPT).facts({IMG: SCRIPT}).notes([ATTR]).heading(STYLE)
    s.table([SCRIPT], [[IMG]], caption=COMMENT).record(SCRIPT, {IMG: ATTR})
    doc = page.html()
    # No payload survives as markup anywhere; each place shows it escaped.
    for bad in ("<script", "<img src=x", "<svg", "<iframe", "<b>", "<!--",
                "<style>body"):
        assert bad not in doc
    # SCRIPT in <title>, <h1>, paragraph, fact, table header, record heading;
    # BREAKOUT in the section's <h2> and its nav link.
    assert doc.count("&lt;script&gt;") == 8
    assert f'content="{CSP}"' in doc


def test_table_refuses_a_row_of_the_wrong_width():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        Page("t").section("s").table(["a", "b", "c"], [[1, 2]])


def test_figure_takes_figures_or_data_uris():
    with pytest.raises(ValueError, match="data: URI"):
        Page("t").section("s").figure("javascript:alert(1)", alt="x")


def test_plots_refuse_missing_estimates():
    with pytest.raises(ValueError, match="leave such entries out"):
        plots.interval_plot(["a"], [None], [0.1], [0.9], xlabel="x")
    with pytest.raises(ValueError, match="2 entries for 1 labels"):
        plots.rate_plot(["a"], [0.5, 0.6], [0.1], [0.9], xlabel="x", ylabel="y")


def test_interval_plot_draws_the_given_points_and_whiskers():
    fig = plots.interval_plot(["a", "b", "c"], [0.5, 0.7, 0.2], [0.4, 0.6, 0.1],
                              [0.6, 0.8, 0.35], xlabel="share", reference=0.5)
    ax = fig.axes[0]
    point = ax.lines[-1]
    # The first label is drawn at the top (y = 2).
    assert list(point.get_xdata()) == [0.5, 0.7, 0.2]
    assert list(point.get_ydata()) == [2, 1, 0]
    segs = [s.tolist() for s in ax.collections[0].get_segments()]
    assert segs == [[[0.4, 2], [0.6, 2]], [[0.6, 1], [0.8, 1]], [[0.1, 0], [0.35, 0]]]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert list(ax.lines[0].get_xdata()) == [0.5, 0.5]  # the reference line


def test_rate_plot_draws_bins_with_vertical_intervals():
    fig = plots.rate_plot(["1–2", "2–∞"], [0.55, 0.7], [0.5, 0.6], [0.6, 0.8],
                          xlabel="r", ylabel="P", notes=["n=10", "n=20"])
    ax = fig.axes[0]
    assert list(ax.lines[-1].get_ydata()) == [0.55, 0.7]
    segs = [s.tolist() for s in ax.collections[0].get_segments()]
    assert segs == [[[0, 0.5], [0, 0.6]], [[1, 0.6], [1, 0.8]]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1–2\nn=10", "2–∞\nn=20"]


def test_plot_labels_are_drawn_literally():
    # "$\\frac{$" is broken mathtext: parsed, it would fail the figure.
    labels = ["$\\frac{$", SCRIPT]
    fig = plots.interval_plot(labels, [0.5, 0.6], [0.4, 0.5], [0.6, 0.7],
                              xlabel="$x", notes=["$1", "<b>"])
    svg = base64.b64decode(plots.to_data_uri(fig).split(",", 1)[1])
    texts = figure_texts(svg)
    assert "$\\frac{$" in texts and "$1" in texts
    assert b"<script" not in svg and b"<b>" not in svg


def test_plots_are_deterministic_svg_without_script():
    def uri():
        return plots.to_data_uri(plots.interval_plot(
            ["a", "b"], [0.5, 0.7], [0.4, 0.6], [0.6, 0.8], xlabel="share"))

    a = uri()
    assert a == uri()
    svg = base64.b64decode(a.split(",", 1)[1])
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg") and b"<script" not in svg


# ---------------------------------------------------------------- audit page


def test_audit_page_shows_the_results_figures(hostile):
    ps, res = hostile
    doc = build_page(res, examples=ps).html()
    assert len(images(doc)) == 3  # bias, length ratio, style coefficients
    d = res.to_dict()
    ch = d["length"]["chars"]
    lo, hi = ch["wilson95"]
    assert f"{ch['frac_chosen_longer']:.3f}" in doc and f"[{lo:.3f}, {hi:.3f}]" in doc
    bias, ratio, style = (figure_texts(i) for i in images(doc))
    shown = [k for k, v in {**d["length"], **d["features"]}.items()
             if v["wilson95"] is not None]
    assert [t for t in bias if t in shown] == shown
    assert [t for t in ratio if t.startswith("n=")] == [
        f"n={b['n']}" for b in d["length_ratio_bins"] if b["n"]]
    coefs = d["style_fit"]["coefficients"]
    assert [t for t in style if t in d["style_fit"]["features"]] == [
        c["feature"] for c in coefs]
    for c in coefs:
        assert f"[{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]" in doc
    # The findings this file was built to have, and their rows quoted.
    q = d["quality"]
    assert [q[k]["rows"] for k in ("identical_pairs", "duplicate_pairs",
                                   "empty_rejected", "conflicting_pairs")] == [
        [0], [2], [3], [4, 5]]
    for row in (0, 2, 3, 4, 5):
        assert f"<h4>row {row}</h4>" in doc
    assert "(empty)" in doc


def test_audit_page_quotes_hostile_text_as_text(hostile):
    ps, res = hostile
    doc = build_page(res, examples=ps).html()
    quoted = "\n".join(parse(doc).quoted)
    for payload in PAYLOADS:
        assert payload in quoted  # shown verbatim once unescaped by a parser
    assert "<script" not in doc and "<iframe" not in doc
    assert escape_text(EVIL_NAME) in doc and EVIL_NAME not in doc


def test_examples_must_come_from_the_audited_data(hostile, tmp_path):
    ps, res = hostile
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"chosen": "a", "rejected": "b"}))
    with pytest.raises(InputError, match="examples come from"):
        build_page(res, examples=load_pairs(other))
    with pytest.raises(InputError, match="lacks column"):
        build_page(res, examples=ps.frame.drop("chosen"))
    with pytest.raises(InputError, match="PairSet or the polars frame"):
        build_page(res, examples=[1, 2])
    # The frame alone also works; without examples the rows are only listed.
    assert "<h4>row 0</h4>" in build_page(res, examples=ps.frame).html()
    assert "<h4>row 0</h4>" not in build_page(res).html()


def test_build_page_refuses_unknown_results():
    with pytest.raises(TypeError, match="no report page for dict"):
        build_page({})


def test_repr_html_is_a_fragment_of_the_same_page(hostile):
    _, res = hostile
    frag = res._repr_html_()
    assert frag.startswith('<div class="rlhf-diag"><style>')
    assert "<html" not in frag and "<script" not in frag
    assert len(images(frag)) == 3
    assert "Length and format bias" in frag and "Data quality" in frag
    assert "Length and format: chosen vs rejected" in res.summary()


def test_without_matplotlib_pages_say_so_and_reports_refuse(hostile, monkeypatch,
                                                             tmp_path):
    ps, res = hostile
    monkeypatch.setattr(plots, "available", lambda: False)
    frag = res._repr_html_()
    assert images(frag) == [] and "matplotlib is not installed" in frag
    with pytest.raises(ImportError, match=r"rlhf_diag\[report\]"):
        write_report(res, tmp_path / "r.html", examples=ps)
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_the_report(hostile, tmp_path, capsys):
    ps, _ = hostile
    out = tmp_path / "r.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["audit", ps.source, "--report", str(out)]) == 0
    doc = out.read_text()
    assert doc.startswith("<!DOCTYPE html>") and len(images(doc)) == 3
    assert "<h4>row 0</h4>" in doc
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:|#)', doc)


def test_helpful_base_report_quotes_its_identical_pairs(shared_data, tmp_path):
    ps = load_pairs(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz")
    res = quiet_audit(ps)
    doc = write_report(res, tmp_path / "hb.html", examples=ps).read_text()
    assert len(images(doc)) == 3
    rows = res.quality["identical_pairs"]["rows"]
    assert rows == [721, 2168]
    quoted = parse(doc).quoted
    # Each record quotes prompt, chosen, rejected; identical pairs show the
    # same (clipped) text twice.
    by_row = dict(zip(re.findall(r"<h4>row (\d+)</h4>", doc),
                      [quoted[i:i + 3] for i in range(0, len(quoted), 3)]))
    for row in rows:
        _prompt, chosen, rejected = by_row[str(row)]
        assert chosen == rejected and chosen.strip()


# ------------------------------------------------------------------ browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# Unescaped on purpose: proves scripts and error handlers do run in the
# browser as the test starts it, so the absence of the payloads' effects means
# something.
CONTROL = (
    "<script>document.body.setAttribute('data-control','script')</script>"
    "<img src=x onerror=\"document.body.setAttribute('data-control-img','ran')\">"
)


def dom_without_csp(report: str, tmp_path, name: str) -> str:
    """The DOM chromium builds from ``report`` (headless, networking off)
    with the page's CSP taken out and the live ``CONTROL`` script added, so
    that only the escaping stands between the payloads and the browser."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    assert meta in report
    probe = report.replace(meta, "").replace("</body>", CONTROL + "</body>")
    assert probe.count(CONTROL) == 1 and "Content-Security-Policy" not in probe
    page = tmp_path / f"{name}.html"
    page.write_text(probe)
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--no-first-run", "--disable-extensions", "--disable-sync",
        "--disable-background-networking", "--disable-component-update",
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000",
        "--dump-dom", page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          check=True).stdout


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary installed")
def test_planted_script_does_not_run_in_a_real_browser(hostile, tmp_path):
    ps, res = hostile
    report = write_report(res, tmp_path / "report.html", examples=ps).read_text()
    dom = dom_without_csp(report, tmp_path, "probe")
    body = re.search(r"<body[^>]*>", dom).group()
    parsed = parse(dom)
    assert "data-pwned" not in body and parsed.title == "Preference data audit"
    assert 'data-control="script"' in body and 'data-control-img="ran"' in body
    quoted = "\n".join(parsed.quoted)
    for payload in PAYLOADS:
        assert payload in quoted
    # Nothing was swallowed by a comment or a broken-out element: the footer
    # after the last quote is still there.
    assert "<footer>rlhf_diag" in dom


# ----------------------------------------------------------------- notebook


def test_notebooks_are_committed_without_outputs():
    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert books
    for path in books:
        nb = json.loads(path.read_text())
        for c in nb["cells"]:
            if c["cell_type"] == "code":
                assert c["outputs"] == [] and c["execution_count"] is None, path.name


# Every walkthrough, what it must leave in $RLHF_DIAG_OUT (if anything).
WALKTHROUGHS = {
    "audit_walkthrough.ipynb": ["helpful-base-audit.html"],
    "leaderboard_walkthrough.ipynb": [],
    "kl_walkthrough.ipynb": [],
    "sycophancy_walkthrough.ipynb": [],
}


def test_every_notebook_is_executed_by_the_suite():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(WALKTHROUGHS)


def _first_line(cell) -> str:
    lines = [ln for ln in cell.source.splitlines() if ln.strip()]
    return lines[0] if lines else "(empty)"


def _execute(path: Path):
    """Run a notebook in a fresh kernel with its folder as working directory.
    Returns the executed notebook and None, or a message naming the notebook,
    the cell (index and first line) and the error."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    current = {"index": None}

    def started(cell, cell_index, **_):
        current["index"] = cell_index

    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=started,
    )
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, timeout, dead kernel
        i = current["index"]
        where = "before any cell ran" if i is None else (
            f"cell {i} (starting {_first_line(nb.cells[i])!r})"
        )
        errors = [] if i is None else [
            o for o in nb.cells[i].get("outputs", []) if o.get("output_type") == "error"
        ]
        what = (
            f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors
            else f"{type(exc).__name__}: {str(exc)[-500:]}"
        )
        return nb, f"{path.parent.name}/{path.name} failed in {where}: {what}"
    return nb, None


def test_notebook_failure_names_the_notebook_and_cell(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("# divide\ny = x / 0"),
        nbformat.v4.new_code_cell("z = 2"),
    ]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    _, msg = _execute(path)
    assert msg == (
        f"{tmp_path.name}/broken.ipynb failed in cell 2 (starting '# divide'): "
        "ZeroDivisionError: division by zero"
    )


@pytest.mark.parametrize("name", sorted(WALKTHROUGHS))
def test_walkthrough_notebook_executes(name, shared_data, monkeypatch, tmp_path):
    """Run the notebook as a new user would (fresh kernel, cwd notebooks/);
    a failure names the notebook, the cell and the error."""
    monkeypatch.setenv("RLHF_DIAG_DATA", str(shared_data))
    monkeypatch.setenv("RLHF_DIAG_OUT", str(tmp_path))
    monkeypatch.delenv("RLHF_DIAG_NOTEBOOK_HEAVY", raising=False)
    nb, failure = _execute(NOTEBOOKS / name)
    if failure:
        pytest.fail(failure, pytrace=False)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran), f"{name}: a cell did not run"
    shown = [o for c in ran for o in c.outputs
             if o.get("output_type") in ("execute_result", "display_data")]
    assert any("text/html" in o.get("data", {}) for o in shown), (
        f"{name}: no rich (HTML) output; result objects should be displayed"
    )
    for out in WALKTHROUGHS[name]:
        assert (tmp_path / out).is_file(), f"{name} did not write {out}"
