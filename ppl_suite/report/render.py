"""Render a results folder as a Markdown report (PNGs beside it) and one self-contained HTML page.

    write_report(results, out, formats=("md", "html"))
      out/report.md        Markdown, figures in out/figures/*.png
      out/report.html      one file: CSS inline, figures inlined as base64 data URIs, no scripts

The report is a function of the results folder alone: rerunning it gives the same numbers. Figures
are drawn by up to FIGURE_PROCESSES processes: spawned ones start while the sections are built, once
``document.POOL_FIGURES`` figures are to be drawn, and this one joins in once they are
(``Context.drawn``). Each figure is drawn on its own, so the files are the same whatever the number
of processes. A figure whose data and code are those the report in ``out`` drew it from is kept as
it is (``digest.figure_key``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import math
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from ppl_suite import paths
from ppl_suite.executors.stop import stop_groups
from ppl_suite.executors.worker import HeldSpawnContext, guard
from ppl_suite.report import digest, document
from ppl_suite.report.document import Block, Code, Context, Heading, Image, Links, Table, Text, slug
from ppl_suite.report.order import sections
from ppl_suite.results import opened

FORMATS = ("md", "html")
MISSING = "—"
FIGURE_PROCESSES = 2  # processes drawing figures, this one included (never more than there are CPUs)

CSS = """
:root { --ink: #1d232b; --muted: #5b6672; --rule: #d8dde3; --band: #f4f6f8; --accent: #1f6fb4; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; }
h2 { font-size: 1.35rem; margin: 2.5rem 0 .75rem; padding-bottom: .25rem;
     border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
h4 { font-size: 1rem; margin: 1.5rem 0 .4rem; color: var(--muted); }
p { margin: .5rem 0; max-width: 80ch; }
p.note { color: var(--muted); font-style: italic; }
.subtitle { color: var(--muted); margin: 0 0 1rem; }
code { font: .9em ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; background: var(--band);
       padding: 0 .2em; border-radius: 3px; }
pre { background: var(--band); padding: .6rem .8rem; overflow-x: auto; border-radius: 4px;
      font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre.formula { font-size: 15px; text-align: center; }
nav.toc { background: var(--band); padding: .5rem 1rem; border-radius: 4px; font-size: .92rem; }
nav.toc ul { margin: .2rem 0; padding-left: 1.2rem; }
a { color: var(--accent); }
.table-wrap { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: .22rem .45rem; border-bottom: 1px solid var(--rule); text-align: left;
         white-space: nowrap; }
td.long { white-space: normal; min-width: 40ch; }
details { margin: .4rem 0 1rem; }
details > summary { cursor: pointer; color: var(--muted); font-size: 13px; max-width: 90ch; }
details > summary strong { color: var(--accent); font-weight: 600; }
nav.toc ul ul { display: flex; flex-wrap: wrap; gap: 0 .9rem; list-style: none; padding-left: .6rem; }
th { background: var(--band); position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fdecea; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: .2rem 0 .4rem;
          white-space: normal; max-width: 80ch; font-size: 13px; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--rule); }
figure.small { display: inline-block; vertical-align: top; margin-right: 1rem; }
figcaption { color: var(--muted); font-size: 13px; margin-top: .35rem; max-width: 90ch; }
"""


# ---------------------------------------------------------------------------------------- formatting
def format_value(value: Any, fmt: str | Callable[[Any], str] | None = None) -> str:
    """One table cell as text: NaN and None as a dash, booleans as yes/no, floats by ``fmt``."""
    if callable(fmt):
        return fmt(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    if fmt is not None and isinstance(value, int | float):
        return fmt.format(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_pm(value: Any, se: Any) -> str:
    """``value ± se``, with the value's decimals set by the SE (two significant digits of the SE)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if se is None or not math.isfinite(float(se)):
        return f"{value:.4f}"
    if se == 0:
        return f"{value:.4f} (exact)"
    decimals = min(max(1 - math.floor(math.log10(abs(se))), 0), 10)
    return f"{value:.{decimals}f} ± {se:.{decimals}f}"


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def table_cells(table: Table) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, rows of text cells and which columns are numeric, after formats and ± joins."""
    frame = table.frame
    dropped = set(table.pm.values())
    header = [c for c in frame.columns if c not in dropped]
    numeric = [_numeric(frame[c]) for c in header]
    body = []
    for _, row in frame.iterrows():
        cells = []
        for name in header:
            if name in table.pm:
                cells.append(format_pm(row[name], row[table.pm[name]]))
            else:
                cells.append(format_value(row[name], table.formats.get(name)))
        body.append(cells)
    header = [f"{c} ± SE" if c in table.pm else str(c) for c in header]
    return header, body, numeric


# ------------------------------------------------------------------------------------------ markdown
def _md_anchor(text: str) -> str:
    """The anchor Markdown viewers (GitHub style) give a heading."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


# Markdown's markup characters (CommonMark's and GitHub's: tables, strikethrough, math), escaped with a
# backslash; "_" only where it can open or close emphasis (not between two letters or digits, so that
# names such as mean_field stay as they are).
MD_MARKUP = re.compile(r"[\\`*\[\]<>|&~$]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def _md_escape(text: str) -> str:
    """Text shown as itself in Markdown, on one line: as HTML escaping does for the HTML page."""
    return MD_MARKUP.sub(lambda markup: "\\" + markup.group(0), " ".join(text.splitlines()))


def _md_inline(text: str) -> str:
    """Escape text for Markdown, keeping `code` spans (as ``_inline`` does for HTML)."""
    parts = re.split(r"(`[^`]+`)", " ".join(text.split()))
    return "".join(p if i % 2 else _md_escape(p) for i, p in enumerate(parts))


def _md_fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``, so that the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(title: str, subtitle: str, parts: Sequence[tuple[str, list[Block]]], base: Path) -> str:
    """The report as Markdown: the first section, the contents, the other sections; images are
    referenced relative to ``base`` (the report's folder). Every text is escaped (``_md_escape``) but
    for its `code` spans."""
    lines = [f"# {_md_escape(title)}", "", _md_inline(subtitle), ""]
    contents = ["## Contents", ""] + [f"- [{_md_escape(t)}](#{_md_anchor(t)})" for t, _ in parts] + [""]
    for i, (section_title, blocks) in enumerate(parts):
        if i == 1:
            lines += contents
        lines += [f"## {_md_escape(section_title)}", ""]
        for block in blocks:
            lines += [*_md_block(block, base), ""]
    if len(parts) < 2:
        lines += contents
    return "\n".join(lines).rstrip() + "\n"


def _md_block(block: Block, base: Path) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + _md_escape(block.text)]
    if isinstance(block, Text):
        text = _md_inline(block.text)
        return [f"*{text}*" if block.note else text]
    if isinstance(block, Code):
        fence = _md_fence(block.text)
        return [fence, block.text, fence]
    if isinstance(block, Table):
        header, body, numeric = table_cells(block)
        if block.details and header:
            summary = f"{html.escape(block.caption)} ({len(body)} rows)"
            out = [f"<details><summary>{summary}</summary>", ""]
        else:
            out = [f"*{_md_inline(block.caption)}*", ""] if block.caption else []
        if not header:
            return [*out, "*(empty table)*"]
        out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        out.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
        out += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
        return [*out, "", "</details>"] if block.details else out
    if isinstance(block, Links):
        caption = [f"*{_md_inline(block.caption)}*", ""] if block.caption else []
        return caption + [
            f"- {_md_inline(label)}: "
            + " · ".join(f"[{_md_escape(name)}]({_relative_link(path, base)})" for name, path in links)
            for label, links in block.items
        ]
    if isinstance(block, Image):
        relative = block.path.relative_to(base).as_posix()
        return [
            f"![{_md_escape(block.alt or block.caption)}]({relative})",
            "",
            f"*{_md_inline(block.caption)}*",
        ]
    raise TypeError(f"unknown block {block!r}")


def _relative_link(path: Path, base: Path) -> str:
    """``path`` as a URL relative to the folder ``base`` (the report's)."""
    return urllib.parse.quote(Path(os.path.relpath(path.resolve(), base.resolve())).as_posix())


# ---------------------------------------------------------------------------------------------- html
def _inline(text: str) -> str:
    """Escape text for HTML, keeping `code` spans."""
    parts = re.split(r"`([^`]+)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


class Anchors:
    """Unique HTML ids: a section's slug, a sub-heading's prefixed by its section's (and a level-4
    heading's by its level-3 heading's), numbered where they would repeat."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, *parts: str) -> str:
        anchor = "-".join(slug(part) for part in parts if part)
        unique, n = anchor, 1
        while unique in self.used:
            n += 1
            unique = f"{anchor}-{n}"
        self.used.add(unique)
        return unique


def to_html(title: str, subtitle: str, parts: Sequence[tuple[str, list[Block]]], base: Path) -> str:
    """The report as one HTML page: inline CSS, figures as base64 data URIs, no scripts. The first
    section comes first; then the table of contents, listing every section and, under it, its level-3
    headings (one per model); then the other sections. Links to files are relative to ``base``, the
    report's folder."""
    anchors = Anchors()
    opening = 0  # the first section (the answer) comes before the contents: it is the first screen
    toc = ["<nav class='toc'><strong>Contents</strong><ul>"]
    body = []
    for section_title, blocks in parts:
        anchor = anchors.new(section_title)
        body.append(f"<section id='{anchor}'><h2>{html.escape(section_title)}</h2>")
        subs: list[tuple[str, str]] = []
        parent = anchor
        for block in blocks:
            if isinstance(block, Heading):
                if block.level <= 3:
                    ident = anchors.new(anchor, block.text)
                    parent = ident
                    subs.append((ident, block.text))
                else:
                    ident = anchors.new(parent, block.text)
                body.append(_html_heading(block, ident))
            else:
                body.append(_html_block(block, base))
        body.append("</section>")
        opening = opening or len(body)
        toc.append(f"<li><a href='#{anchor}'>{html.escape(section_title)}</a>")
        if subs:
            items = "".join(f"<li><a href='#{i}'>{html.escape(text)}</a></li>" for i, text in subs)
            toc.append(f"<ul>{items}</ul>")
        toc.append("</li>")
    toc.append("</ul></nav>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{html.escape(title)}</title>",
            f"<style>{CSS}</style></head><body><main>",
            f"<h1>{html.escape(title)}</h1><p class='subtitle'>{_inline(subtitle)}</p>",
            *body[:opening],
            *toc,
            *body[opening:],
            "</main></body></html>",
            "",
        ]
    )


def _html_heading(block: Heading, ident: str) -> str:
    level = min(max(block.level, 3), 6)
    return f"<h{level} id='{ident}'>{html.escape(block.text)}</h{level}>"


LONG_CELL = 60  # characters: a table cell longer than this wraps


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _cell_class(text: str, numeric: bool) -> str:
    """A table cell's CSS class: right-aligned numbers, wrapping long text."""
    return "num" if numeric else "long" if len(text) > LONG_CELL else "text"


def _html_block(block: Block, base: Path) -> str:
    if isinstance(block, Links):
        caption = f"<p>{_inline(block.caption)}</p>" if block.caption else ""
        items = "".join(
            f"<li>{_inline(label)}: "
            + " · ".join(
                f"<a href='{html.escape(_relative_link(path, base), quote=True)}'>{html.escape(name)}</a>"
                for name, path in links
            )
            + "</li>"
            for label, links in block.items
        )
        return f"{caption}<ul class='links'>{items}</ul>"
    if isinstance(block, Text):
        css = " class='note'" if block.note else ""
        return f"<p{css}>{_inline(' '.join(block.text.split()))}</p>"
    if isinstance(block, Code):
        css = " class='formula'" if "\n" not in block.text and len(block.text) < 80 else ""
        return f"<pre{css}>{html.escape(block.text)}</pre>"
    if isinstance(block, Table):
        header, body, numeric = table_cells(block)
        if not header:
            return f"<p class='note'>{_inline(block.caption)} (empty table)</p>"
        caption = (
            f"<caption>{_inline(block.caption)}</caption>" if block.caption and not block.details else ""
        )
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        flag = header.index("flag") if "flag" in header else None
        lines = []
        for cells in body:
            css = " class='flag'" if flag is not None and cells[flag] not in ("", MISSING) else ""
            tds = "".join(
                f"<td class='{_cell_class(c, n)}'>{html.escape(c)}</td>"
                for c, n in zip(cells, numeric, strict=True)
            )
            lines.append(f"<tr{css}>{tds}</tr>")
        table = (
            f"<div class='table-wrap'><table>{caption}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table></div>"
        )
        if block.details:
            summary = f"<strong>{len(body)} rows</strong>: {_inline(block.caption)}"
            return f"<details><summary>{summary}</summary>{table}</details>"
        return table
    if isinstance(block, Image):
        raw = block.path.read_bytes()
        width, height = png_size(raw)
        data = base64.b64encode(raw).decode("ascii")
        alt = html.escape(block.alt or block.caption, quote=True)
        from ppl_suite.report.drawing import SCALE  # imported by write_report before any block

        size = f"width='{width // SCALE}' height='{height // SCALE}'"
        small = " class='small'" if width // SCALE < 600 else ""
        return (
            f"<figure{small}><img src='data:image/png;base64,{data}' alt='{alt}' {size}>"
            f"<figcaption>{_inline(' '.join(block.caption.split()))}</figcaption></figure>"
        )
    raise TypeError(f"unknown block {block!r}")


# ------------------------------------------------------------------------------------------- writing
def build(context: Context) -> list[tuple[str, list[Block]]]:
    """Every registered section's title and blocks, in report order; a section that builds no block
    has nothing to say and is left out (of the contents too)."""
    built = [(section.title, section.build(context)) for section in sections()]
    return [(title, blocks) for title, blocks in built if blocks]


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"md,html"`` or ``["md", "html"]`` as a checked tuple; unknown formats are a ValueError."""
    names = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = sorted(set(names) - set(FORMATS))
    if unknown or not names:
        raise ValueError(
            f"unknown report format(s) {', '.join(unknown) or '(none)'}; valid: {', '.join(FORMATS)}"
        )
    return tuple(dict.fromkeys(names))


def _figure_pool(processes: int) -> contextlib.AbstractContextManager[Executor | None]:
    """The spawned processes (they inherit no matplotlib state) that draw figures beside this one."""
    if processes < 2:
        return contextlib.nullcontext()
    return _stopped_on_error(
        ProcessPoolExecutor(processes - 1, mp_context=HeldSpawnContext(), initializer=guard)
    )


@contextlib.contextmanager
def _stopped_on_error(pool: ProcessPoolExecutor) -> Iterator[ProcessPoolExecutor]:
    """``pool``, shut down when done; on any exception (KeyboardInterrupt from SIGINT or SIGTERM
    included) its figures not yet drawn are dropped and its processes stopped at once (SIGTERM, then
    SIGKILL), so none outlives the report, and multiprocessing's resource tracker, which lives while
    a process holds its pipe, goes with them. Its processes are ``worker.guard``-ed: Ctrl-C reaches
    only this one, and they die with it."""
    try:
        yield pool
    except BaseException:
        processes = dict(pool._processes or {})  # pid -> Process; no public accessor
        pool.shutdown(wait=False, cancel_futures=True)
        stop_groups(list(processes), lambda pid: processes[pid].is_alive())
        raise
    pool.shutdown(wait=True)


FIGURE_LIST = digest.FIGURE_LIST  # the figures the last report drew with their sha256: all it removes
FIGURE_NAME = re.compile(r"[a-z0-9-]+\.png")  # Context.figure's names (document.slug)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def forget_stale_figures(figure_dir: Path, drawn: set[str]) -> None:
    """Remove the figures an earlier report listed as its own (``<name> <sha256>`` per line in
    figures.txt) and this one no longer draws, each only while it is a regular file of figure_dir
    with the listed content (a figure a user replaced, a link, a ``../`` name or a line of an older
    listing is left alone); then list this report's."""
    figure_dir.mkdir(parents=True, exist_ok=True)
    listing = paths.inside(figure_dir, FIGURE_LIST)
    lines = listing.read_text(errors="replace").splitlines() if paths.is_own_file(listing) else []
    earlier = dict(line.split(" ", 1) for line in lines if line.count(" ") == 1)
    for name in sorted(set(earlier) - drawn):
        path = figure_dir / name
        if FIGURE_NAME.fullmatch(name) and paths.is_own_file(path) and _sha256(path) == earlier[name]:
            paths.remove(figure_dir, name)
    written = (paths.inside(figure_dir, name) for name in sorted(drawn))
    payload = "".join(f"{path.name} {_sha256(path)}\n" for path in written if paths.is_own_file(path))
    listing.write_text(payload)


class ReportFiles(dict[str, Path]):
    """The report's files by format; ``rewritten`` is False when the report was left as it was
    (its digest unchanged, ``digest``)."""

    def __init__(self, files: dict[str, Path], rewritten: bool) -> None:
        super().__init__(files)
        self.rewritten = rewritten


def write_report(
    results: str | Path,
    out: str | Path,
    formats: str | Iterable[str] = FORMATS,
    processes: int | None = None,
    force: bool = False,
) -> ReportFiles:
    """Write the report of the results folder ``results`` into the folder ``out``, unless the report
    there was written from the same results, code and formats and is intact (``digest``; ``force``:
    write it all the same).

    Returns the report's files by format (``rewritten``: whether they were written now). Markdown
    gets its figures in ``out/figures``, each kept as it is where the last report drew it from the
    same data and code (``force``: drawn all the same); the HTML page embeds them, so with HTML alone
    the figures are drawn in a temporary folder and not kept.
    ``processes`` draw the figures: this one and ``processes - 1`` spawned ones (default:
    FIGURE_PROCESSES, at most one per CPU). As with any spawned process, a script calling this
    with more than one needs the ``if __name__ == "__main__":`` guard.
    """
    chosen = parse_formats(formats)
    results, out = Path(results), Path(out)
    store = opened(results)  # InputProblem: missing, not a results folder, a damaged or newer manifest
    if processes is None:
        processes = min(FIGURE_PROCESSES, os.cpu_count() or 1)
    out.mkdir(parents=True, exist_ok=True)
    targets = {kind: paths.inside(out, f"report.{kind}") for kind in chosen}  # no link followed out
    code = digest.code_digest(document.registered())
    inputs = digest.report_digest(results, chosen, document.registered(), code)
    if not force and digest.unchanged(out, inputs, chosen):
        return ReportFiles(targets, rewritten=False)
    # a figure drawn by the last report from the same data and code is kept (``digest.figure_key``)
    reusable = digest.reusable_figures(out) if "md" in chosen and not force else {}
    from ppl_suite.report import drawing  # noqa: F401  matplotlib (Agg backend): only when a report is drawn

    figures = paths.inside(out, "figures")
    name = results.resolve().name
    title = f"ppl-suite report: {name}"
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as scratch, _figure_pool(processes) as pool:
        figure_dir = figures if "md" in chosen else Path(scratch)
        context = Context(store, figure_dir, pool, code if "md" in chosen else None, reusable)
        manifest = context.manifest
        subtitle = (
            f"Results folder `{name}`: run started {manifest.get('started', 'unknown')}, "
            f"finished {manifest.get('finished', 'unknown')}."
        )
        parts = build(context)
        context.drawn()
        if "md" in chosen:
            forget_stale_figures(figure_dir, {path.name for path in context.figures})
        if "md" in chosen:
            written["md"] = targets["md"]
            written["md"].write_text(to_markdown(title, subtitle, parts, out), encoding="utf-8")
        if "html" in chosen:
            written["html"] = targets["html"]
            written["html"].write_text(to_html(title, subtitle, parts, out), encoding="utf-8")
    digest.record(out, inputs, written, context.keys)
    return ReportFiles(written, rewritten=True)
