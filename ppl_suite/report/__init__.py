"""Reports of a results folder: Markdown with PNGs beside it, and one self-contained HTML page.

Reports read the results store only and compute no statistics: every number shown is a stored column,
trace or artifact, a pandas operation on them, or one of the few derived numbers of ``numbers``.

    document.py  blocks (Heading, Text, Code, Table, Image), the Context sections read, the Section
                 protocol (title, build, optional headline) and its registry
    order.py     the one place that orders the report: discovers this package's modules, sorts them
    tables.py    DataFrames of the store (no drawing; imported by the CLI for its console table)
    numbers.py   derived numbers a sentence and a figure share (residuals, the ELBO's gain split)
    drawing.py   what every figure shares: style, colours, the 2x-resolution PNG writer
    words.py     section titles, counts and lists in words
    render.py    write_report(results, out, formats): blocks -> report.md / report.html

One module per topic, each owning its text, tables and figures: opening (the first screen: the answer
and every section's headline), glossary, identity, training, estimators, posterior, references,
agreement, cost, failures, facts; plug-ins (vae, draws_files, ...) are found the same way.

A new section is an object with ``title`` and ``build(context) -> list[Block]`` (and optionally
``headline(context)``) passed to ``document.register`` by a module of this package.
"""
