"""Reports of a results folder: Markdown with PNGs beside it, and one self-contained HTML page.

Reports read the results store only and compute nothing statistical: every number shown is a stored
column, trace or artifact, or a pandas operation on them.

    tables.py    DataFrames of the store (no drawing; imported by the CLI for its console table)
    figures.py   matplotlib (Agg) drawings of given numbers, one PNG each; imported by rendering only
    document.py  blocks (Heading, Text, Code, Table, Image), the Context sections read, the Section
                 protocol and its registry
    sections.py  the built-in sections, registered in report order
    render.py    write_report(results, out, formats): blocks -> report.md / report.html

A new section is an object with ``title`` and ``build(context) -> list[Block]`` passed to
``document.register``.
"""
