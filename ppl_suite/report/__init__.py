"""Reports of a results folder: Markdown with PNGs beside it, and one self-contained HTML page.

Reports read the results store only and compute no statistics: every number shown is a stored column,
trace or artifact, a pandas operation on them, or one of the few derived numbers of ``numbers``.

    document.py  blocks (Heading, Text, Code, Table, Image), the Context sections read, the Section
                 protocol (title, build, and its declared headline, summary, cost, without_cells;
                 SectionDefaults) and its registry (SECTIONS)
    order.py     the one place that orders the report: discovers this package's modules, sorts them
    rows.py      what every topic reads of the store: finished cells, display order, labels, reliability
    run_tables.py  the identity and failures tables front ends print (no drawing)
    numbers.py   derived numbers a sentence and a figure share (residuals, the ELBO's gain split)
    drawing.py   what every figure shares: style, colours, the 2x-resolution PNG writer
    words.py     section titles, counts and lists in words
    render.py    write_report(results, out, formats): blocks -> report.md / report.html

One module per topic, each owning its text, tables and figures: opening (the first screen: the answer
and every section's headline), glossary, identity, training, estimators, posterior, references,
agreement, cost, failures, facts; plug-ins (vae, draws_files, ...) are found the same way. Each topic
module holds its own tables (DataFrames of the store) beside its text and figures.

A new section is an object with ``title`` and ``build(context) -> list[Block]`` that inherits
``document.SectionDefaults`` (and overrides ``headline(context)`` and the others where it has them),
passed to ``document.register`` by a module of this package.
"""
