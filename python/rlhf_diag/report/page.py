"""A small builder of self-contained HTML pages: sections of paragraphs,
fact lists, tables, figures and quoted dataset text.

Every string handed to the builder is escaped (:func:`html.escape`, quotes
included) before it reaches the page; the only raw HTML is what this module
writes itself and the figures of :mod:`rlhf_diag.report.plots`, which come as
``data:`` image URIs. Dataset text is hostile input (red-team sets hold HTML
and script on purpose), so escaping is the rule, not an option.

Two further guards stand behind the escaping, neither replacing it:

- the full page carries a Content-Security-Policy that allows no script, no
  network and only ``data:`` images, so a page opened from disk fetches
  nothing and runs nothing;
- figures are ``<img>`` elements, whose SVG a browser never scripts.

Control characters are shown as Unicode control pictures (U+2400 block) and
quoted text is bidi-isolated, so a stray NUL or right-to-left override in a
response cannot disturb the page around it.

Rejected alternatives: a template engine (Jinja2) adds a dependency for a
dozen element types and makes escaping a per-template setting; inline
``<svg>`` elements share one id space across figures (matplotlib reuses glyph
and clip-path ids) and would put figure markup into the page's DOM.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The page's Content-Security-Policy: no script, no fetch, data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_IMAGE_URIS = ("data:image/svg+xml;base64,", "data:image/png;base64,")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bidi embeddings, overrides and isolates can make quoted text read other than
# it is ("Trojan Source", Boucher & Anderson 2021); they are shown by name.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")

_CSS = """
.rlhf-diag { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; line-height: 1.45; max-width: 1100px; }
.rlhf-diag h1 { font-size: 1.6em; margin: 0.2em 0; }
.rlhf-diag h2 { font-size: 1.25em; margin: 1.6em 0 0.4em;
  border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
.rlhf-diag h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
.rlhf-diag .subtitle { color: #59636e; margin: 0 0 1em; overflow-wrap: anywhere; }
.rlhf-diag nav { font-size: 0.9em; margin-bottom: 1em; }
.rlhf-diag nav a { margin-right: 1em; }
.rlhf-diag table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
.rlhf-diag caption { text-align: left; color: #59636e; padding-bottom: 0.3em; }
.rlhf-diag th, .rlhf-diag td { border: 1px solid #d0d7de; padding: 0.25em 0.6em;
  vertical-align: top; }
.rlhf-diag th { background: #f6f8fa; text-align: left; }
.rlhf-diag td.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.rlhf-diag dl.facts { display: grid; grid-template-columns: max-content auto;
  gap: 0.15em 1.2em; margin: 0.5em 0 1em; }
.rlhf-diag dl.facts dt { color: #59636e; }
.rlhf-diag dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.rlhf-diag figure { margin: 0.5em 0 1.2em; }
.rlhf-diag figure img { max-width: 100%; height: auto; }
.rlhf-diag figcaption { color: #59636e; font-size: 0.9em; }
.rlhf-diag ul.notes li { margin: 0.2em 0; overflow-wrap: anywhere; }
.rlhf-diag ul.warning { background: #fff8c5; border: 1px solid #d4a72c;
  padding: 0.5em 0.5em 0.5em 2em; }
.rlhf-diag .muted { color: #59636e; }
.rlhf-diag .record { border: 1px solid #d0d7de; border-radius: 6px;
  margin: 0.6em 0; padding: 0.4em 0.8em; }
.rlhf-diag .record h4 { margin: 0.2em 0; font-size: 0.95em; }
.rlhf-diag .field-label { font-size: 0.8em; color: #59636e; margin-top: 0.4em;
  text-transform: uppercase; letter-spacing: 0.04em; }
.rlhf-diag pre.quoted { white-space: pre-wrap; overflow-wrap: anywhere;
  unicode-bidi: isolate; background: #f6f8fa; margin: 0.1em 0; padding: 0.4em;
  font-size: 0.85em; max-height: 24em; overflow-y: auto; }
.rlhf-diag .clipped { color: #59636e; font-style: italic; }
.rlhf-diag footer { margin-top: 2em; color: #59636e; font-size: 0.85em; }
"""


def escape(value) -> str:
    """Escape any value for HTML text or an attribute (quotes included)."""
    return html.escape(str(value), quote=True)


def escape_text(text: str) -> str:
    """Escape dataset text, showing control characters as control pictures
    and bidi overrides as ``⟨U+202E⟩``."""
    shown = _CONTROL.sub(
        lambda m: chr(0x2421) if m.group() == "\x7f" else chr(0x2400 + ord(m.group())),
        text,
    )
    shown = _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", shown)
    return escape(shown)


def cell(value) -> str:
    """The text of a table cell: ``None`` as an em dash, floats to 3 places."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


_NUMERIC_TEXT = re.compile(
    r"^(—|[-+−]?[\d.]+(e[-+]?\d+)?%?|[-+]inf|\[[-\d., e+inf]+\])$")


def _is_number(value) -> bool:
    """Numbers, and numbers already formatted as text (``"0.599"``,
    ``"1.3e-21"``, ``"[0.579, 0.618]"``), are right-aligned."""
    if isinstance(value, str):
        return bool(_NUMERIC_TEXT.match(value))
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def clip(text: str, limit: int, keep: str = "head") -> tuple[str, int]:
    """The first (``keep="head"``) or last (``"tail"``) ``limit`` characters
    of ``text`` and how many were left out."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if keep not in ("head", "tail"):
        raise ValueError(f"keep must be 'head' or 'tail', got {keep!r}")
    if len(text) <= limit:
        return text, 0
    return (text[:limit] if keep == "head" else text[-limit:]), len(text) - limit


@dataclass
class Section:
    """One titled part of a :class:`Page`; its methods append blocks in order
    and return the section, so calls can be chained."""

    title: str
    anchor: str
    blocks: list[str] = field(default_factory=list)

    def heading(self, text: str) -> Section:
        self.blocks.append(f"<h3>{escape(text)}</h3>")
        return self

    def paragraph(self, text: str, *, muted: bool = False) -> Section:
        cls = ' class="muted"' if muted else ""
        self.blocks.append(f"<p{cls}>{escape(text)}</p>")
        return self

    def facts(self, items: Mapping[str, object]) -> Section:
        """A two-column list of labels and values."""
        body = "".join(
            f"<dt>{escape(k)}</dt><dd>{escape(cell(v))}</dd>" for k, v in items.items()
        )
        self.blocks.append(f'<dl class="facts">{body}</dl>')
        return self

    def notes(self, items: Iterable[str], *, warning: bool = False) -> Section:
        """A bulleted list; ``warning=True`` highlights it."""
        items = list(items)
        if items:
            cls = "notes warning" if warning else "notes"
            lis = "".join(f"<li>{escape_text(str(i))}</li>" for i in items)
            self.blocks.append(f'<ul class="{cls}">{lis}</ul>')
        return self

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        caption: str | None = None,
        left: Sequence[str] = (),
    ) -> Section:
        """A table; numbers are right-aligned, except in the columns named in
        ``left``; ``None`` shows as an em dash.

        Cells are escaped like every other text: format numbers as strings
        beforehand where the default (3 decimal places) does not fit.
        """
        as_text = [c in left for c in columns]
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = []
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(
                    f"table {caption or self.title!r}: a row has {len(row)} cells "
                    f"for {len(columns)} columns"
                )
            tds = "".join(
                f'<td class="num">{escape(cell(v))}</td>'
                if (_is_number(v) or v is None) and not text
                else f"<td>{escape_text(cell(v))}</td>"
                for v, text in zip(row, as_text)
            )
            body.append(f"<tr>{tds}</tr>")
        cap = f"<caption>{escape(caption)}</caption>" if caption else ""
        self.blocks.append(
            f"<table>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
        return self

    def figure(self, fig, *, alt: str, caption: str | None = None) -> Section:
        """A matplotlib Figure (drawn as SVG), or a ``data:image/...;base64``
        URI from :func:`rlhf_diag.report.plots.to_data_uri`."""
        if isinstance(fig, str):
            uri = fig
            if not uri.startswith(_IMAGE_URIS):
                raise ValueError("figure() takes a Figure or a base64 data: URI")
        else:
            from rlhf_diag.report.plots import to_data_uri

            uri = to_data_uri(fig)
        cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
        self.blocks.append(
            f'<figure><img src="{escape(uri)}" alt="{escape(alt)}">{cap}</figure>'
        )
        return self

    def record(
        self,
        heading: str,
        fields: Mapping[str, str | None],
        *,
        limit: int = 600,
        keep: Mapping[str, str] | None = None,
    ) -> Section:
        """Quoted dataset text: one box with a heading and labelled texts,
        each cut to ``limit`` characters (the head, or the tail for fields
        named in ``keep`` with ``"tail"``) and escaped. Empty and
        whitespace-only texts are said to be so; ``None`` means absent."""
        keep = keep or {}
        parts = [f"<h4>{escape(heading)}</h4>"]
        for label, text in fields.items():
            parts.append(f'<div class="field-label">{escape(label)}</div>')
            if text is None:
                parts.append('<p class="clipped">(absent)</p>')
                continue
            if not text.strip():
                what = "empty" if text == "" else f"whitespace only, {len(text)} chars"
                parts.append(f'<p class="clipped">({escape(what)})</p>')
                continue
            side = keep.get(label, "head")
            shown, cut = clip(text, limit, side)
            note = (
                f'<span class="clipped">[… {cut} earlier characters not shown]</span>\n'
                if cut and side == "tail"
                else ""
            )
            tail = (
                f'\n<span class="clipped">[… {cut} more characters not shown]</span>'
                if cut and side == "head"
                else ""
            )
            parts.append(f'<pre class="quoted">{note}{escape_text(shown)}{tail}</pre>')
        self.blocks.append(f'<div class="record">{"".join(parts)}</div>')
        return self

    def html(self) -> str:
        return (
            f'<section id="{escape(self.anchor)}"><h2>{escape(self.title)}</h2>'
            f"{''.join(self.blocks)}</section>"
        )


@dataclass
class Page:
    """A report page: a title, a subtitle and sections.

    Examples
    --------
    >>> page = Page("Audit", subtitle="data.jsonl")
    >>> _ = page.section("Summary").facts({"pairs": 3})
    >>> "<dd>3</dd>" in page.html()
    True
    """

    title: str
    subtitle: str | None = None
    footer: str | None = None
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        # Anchors unique to the page, so that several results shown in one
        # notebook do not share ids.
        key = hashlib.sha1(f"{self.title}\0{self.subtitle}".encode()).hexdigest()[:8]
        s = Section(title=title, anchor=f"rd-{key}-{len(self.sections) + 1}")
        self.sections.append(s)
        return s

    def _body(self) -> str:
        nav = "".join(
            f'<a href="#{escape(s.anchor)}">{escape(s.title)}</a>'
            for s in self.sections
        )
        sub = (f'<p class="subtitle">{escape(self.subtitle)}</p>'
               if self.subtitle else "")
        foot = f"<footer>{escape(self.footer)}</footer>" if self.footer else ""
        return (
            f"<h1>{escape(self.title)}</h1>{sub}"
            f"<nav>{nav}</nav>{''.join(s.html() for s in self.sections)}{foot}"
        )

    def html(self) -> str:
        """The whole page as one self-contained HTML document."""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(self.title)}</title><style>{_CSS}</style></head>"
            f'<body><div class="rlhf-diag">{self._body()}</div></body></html>\n'
        )

    def fragment(self) -> str:
        """The page as one ``<div>`` with scoped styles, for notebooks."""
        return f'<div class="rlhf-diag"><style>{_CSS}</style>{self._body()}</div>'

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path
