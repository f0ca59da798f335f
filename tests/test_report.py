"""Reports: every section present, figures are real PNGs, the HTML stands alone and shows in a
browser, and the numbers shown are the results table's.

The fixture results folder holds one real cell (normal_normal, hand-rolled backend, few steps), a real
failed cell (an unknown guide family), a real problem unit (Laplace, with AIS and BDMC estimates added),
and cells derived from the real one with the columns, estimates and artifacts other parts of the suite
add (other backends, log p(x) estimators, PSIS k-hat, IWAE over K, ppca-like cells with training curves,
a posterior per backend and guide-free estimates per cell, as learned θ gives), so every section has
data.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ppl_suite import cli, estimators, schema
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell, ProblemUnit, Record
from ppl_suite.cell_columns import EVALUATION
from ppl_suite.estimate import Estimate
from ppl_suite.execute import execute
from ppl_suite.report.agreement import agreement_table
from ppl_suite.report.document import slug
from ppl_suite.report.estimators import estimator_table
from ppl_suite.report.render import _md_escape
from ppl_suite.report.rows import of_model
from ppl_suite.store import ResultsStore

PNG = b"\x89PNG\r\n\x1a\n"
UNRELIABLE_IWAE = "k-hat 0.93 > 0.70"
PPCA_SHIFTS = {"handrolled": 0.0, "pyro": 1.0}  # the ppca-like cells' posteriors apart by this much
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = (
    "Maximize the ELBO, or minimize KL(q || p(z|x)): the same?",
    "Reading this report",
    "The identity, cell by cell",
    "Training: how the ELBO rises",
    "Estimators of log p(x)",
    "q against the posterior",
    "Against the NUTS reference (no closed form)",
    "Backend agreement",
    "Cost",
    "Cells that did not finish",
    "Run facts",
)
OPENING, _, _, TRAINING, ESTIMATORS, POSTERIOR, REFERENCES, AGREEMENT = SECTIONS[:8]
# the sections with a part (a level-3 heading) per model; estimators only for models with an exact value
PER_MODEL = (TRAINING, ESTIMATORS, POSTERIOR)
REFERENCE_LINE = "NUTS 4 x 1000 draws: R-hat <= 1.004, bulk ESS >= 2632; AIS log p(x) -31.313 ± 0.066"


# ------------------------------------------------------------------------------------------ fixture
def _estimate(key: str, scope: str, name: str, value: float, se: float, n: int, **extras) -> dict:
    """A row of the estimates table by the estimator ``name`` (its registered quantity and kind)."""
    estimate = Estimate(value, se, n_evals=n, seconds=0.01 * n / 100, extras=extras)
    return schema.estimate_record(key, scope, estimators.get(name), estimate)


def _cell_estimates(row: dict, rng: np.random.Generator, n: int, khat: float = 0.21) -> list[dict]:
    """Estimates of a cell's fitted guide near its exact log p(x): IWAE, the importance estimate with
    its IWAE curve over K, PSIS k-hat with its reading, the inclusive KL. An IWAE above the k-hat
    threshold is labelled unreliable, as the estimator labels it."""
    key, exact = row[schema.KEY], row[schema.LOG_EVIDENCE]
    k = 2.0 ** np.arange(0, 8)
    iwae = _estimate(key, schema.SCOPE_CELL, "iwae", exact - 0.002 + 0.001 * rng.normal(), 0.001, n)
    if khat > 0.7:
        iwae |= {schema.RELIABILITY: "unreliable", schema.DIAGNOSTIC: UNRELIABLE_IWAE}
    curve = {
        "iwae_k": k.tolist(),
        "iwae": (exact - 0.05 / k).tolist(),
        "iwae_se": (0.01 / np.sqrt(k)).tolist(),
    }
    reading = "good" if khat < 0.5 else "ok" if khat < 0.7 else "unreliable"
    return [
        iwae,
        _estimate(key, schema.SCOPE_CELL, "importance", exact + 0.001 * rng.normal(), 0.001, n, **curve),
        _estimate(key, schema.SCOPE_CELL, "psis", khat, math.nan, n, interpretation=reading),
        _estimate(key, schema.SCOPE_CELL, "inclusive_kl", 0.01, 0.001, n),
    ]


def _evaluation(record: Record, key: str, shift: float = 0.0, drop: tuple[str, ...] = ()) -> list[dict]:
    """The real cell's evaluation rows (``cell_columns.EVALUATION``, which its ELBO, KL... columns are
    derived from) as cell ``key``'s, its ELBO moved by ``shift`` (and log p(x) - ELBO by -shift), but
    for the estimators ``drop``."""
    moved = {"elbo": shift, "kl_identity": -shift}
    return [
        row | {schema.KEY: key, schema.VALUE: row[schema.VALUE] + moved.get(row[schema.ESTIMATOR], 0.0)}
        for row in record.estimates
        if row[schema.ESTIMATOR] in EVALUATION and row[schema.ESTIMATOR] not in drop
    ]


def _guide_free(key: str, scope: str, exact: float, rng: np.random.Generator, n: int) -> list[dict]:
    """AIS and BDMC sandwiching the exact log p(x)."""
    return [
        _estimate(key, scope, "ais", exact - 0.001 + 0.002 * rng.normal(), 0.002, n),
        _estimate(key, scope, "bdmc", exact + 0.001 + 0.002 * rng.normal(), 0.002, n),
    ]


def _training_artifacts(exact: float) -> dict[str, np.ndarray]:
    step = np.arange(0, 101, 10, dtype=float)
    log_evidence = exact - 5.0 * np.exp(-step / 30)
    kl = 3.0 * np.exp(-step / 20) + 1e-3
    return {
        "training.step": step,
        "training.log_evidence": log_evidence,
        "training.kl": kl,
        "training.elbo": log_evidence - kl,
        "training.elbo_se": np.full_like(step, 0.01),
    }


def build_results(path: Path) -> ResultsStore:
    """A small results folder: real units first, then cells derived from them (see module docstring)."""
    store = ResultsStore(path)
    store.write_manifest(
        {
            "command": ["ppl-suite", "run", "--models", "normal_normal"],
            "config": {"models": ["normal_normal"], "svi": {"steps": 60, "lr": 0.05}},
            "versions": {"python": sys.version.split()[0], "numpy": np.__version__},
            "git_commit": None,
            "executor": "local",
            "jobs": 1,
            "started": "2000-01-01T00:00:00+00:00",
            "finished": "2000-01-01T00:01:00+00:00",
        }
    )
    rng = np.random.default_rng(0)
    problem = ProblemUnit("normal_normal", estimators=(("laplace", ()),))
    shared = execute(problem)
    assert shared.ok, shared.row["error"]
    shared.estimates += _guide_free(
        problem.key, schema.SCOPE_PROBLEM, shared.row[schema.LOG_EVIDENCE], rng, 1000
    )
    store.write(problem, shared)
    svi = SVIConfig(steps=60, eval_particles=200)
    real = Cell(
        "normal_normal", "handrolled", "mean_field", svi=svi, eval_samples=1000, problem_key=problem.key
    )
    record = execute(real)
    assert record.ok, record.row["error"]
    failing = Cell("normal_normal", "handrolled", "no_such_guide", svi=svi, eval_samples=1000)
    failed = execute(failing)
    assert failed.row["status"] == "failed"
    store.write(failing, failed)

    base = record.row
    exact = base["log_evidence"]
    derived = [(real, base, _evaluation(record, real.key) + _cell_estimates(base, rng, 1000))]
    for backend, shift in (("pyro", 0.0001), ("numpyro", -0.0002)):
        cell = replace(real, backend=backend)
        row = base | {
            "key": cell.key,
            "backend": backend,
            "elbo": base["elbo"] + shift,
            "kl_identity": base["kl_identity"] - shift,
            "library_elbo": base["elbo"] + shift / 2,
            "library_elbo_se": base["elbo_se"],
            "steps_per_second": base["steps_per_second"] / 50,
        }
        khat = {"pyro": 0.62, "numpyro": 0.93}[backend]  # one cell per PSIS reading with the real one
        derived.append(
            (cell, row, _evaluation(record, cell.key, shift) + _cell_estimates(row, rng, 1000, khat))
        )
    for backend in PPCA_SHIFTS:  # learned θ: each backend's exact posterior is its own, AIS and BDMC too
        ppca = Cell("ppca", backend, "amortized", svi=svi)
        row = base | {"key": ppca.key, "model": "ppca", "backend": backend, "guide": "amortized"}
        row |= {"problem_key": None}
        estimates = _evaluation(record, ppca.key) + _cell_estimates(row, rng, 1000)
        estimates += _guide_free(ppca.key, schema.SCOPE_CELL, exact, rng, 1000)
        derived.append((ppca, row, estimates))
    # a model without an oracle, measured against its NUTS reference (execute.reference_of)
    schools = Cell("eight_schools_noncentered", "numpyro", "mean_field", svi=svi)
    row = base | {
        "key": schools.key,
        "model": "eight_schools_noncentered",
        "backend": "numpyro",
        "problem_key": None,
        "log_evidence": -31.313,
        "log_evidence_se": 0.066,
        "kl": 1.25,
        "kl_se": 0.07,
        "kl_reliability": "reliable",
        "kl_method": "reference",
        "kl_analytic": math.nan,
        "kl_mc": math.nan,
        "residual_se": math.nan,
        "kl_family_min": math.nan,
        "optimization_gap": math.nan,
        "converged": None,
        "reference": REFERENCE_LINE,
    }
    moments = {
        "coordinate": "tau",
        "worst_sd_coordinate": "tau",
        "worst_sd_error": -0.41,
        "worst_sd_error_se": 0.02,
    }
    measured = ("kl_analytic", "kl_monte_carlo", "identity", "optimization_gap")  # need an oracle
    estimates = [
        *_evaluation(record, schools.key, drop=measured),
        _estimate(schools.key, schema.SCOPE_CELL, "kl_reference", 1.25, 0.07, 1000),
        _estimate(schools.key, schema.SCOPE_CELL, "posterior_moments", 0.37, 0.02, 1000, **moments),
        _estimate(schools.key, schema.SCOPE_CELL, "wasserstein", 0.93, 0.04, 2000, floor=0.61, floor_se=0.02),
        _estimate(schools.key, schema.SCOPE_CELL, "psis", 0.83, math.nan, 1000, interpretation="unreliable"),
    ]
    derived.append((schools, row, estimates))
    for cell, row, estimates in derived:
        arrays = dict(record.artifacts)
        if cell.model == "ppca":
            shift = PPCA_SHIFTS[cell.backend]
            arrays |= _training_artifacts(exact) | {
                "q_draws": arrays["q_draws"] + shift,
                "posterior_draws": arrays["posterior_draws"] + shift,
            }
        losses = record.losses + rng.normal(0, 0.01, record.losses.shape)
        store.write(cell, Record(row, losses, arrays, estimates))
    store.finalize()
    return store


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """The fixture results folder and its report, written by ``ppl-suite report``."""
    root = tmp_path_factory.mktemp("report")
    store = build_results(root / "results")
    out = root / "out"
    assert cli.main(["report", str(store.path), "--out", str(out)]) == 0
    return {
        "store": store,
        "rows": store.rows(),
        "estimates": store.estimates(),
        "problems": store.problems(),
        "out": out,
        "md": (out / "report.md").read_text(encoding="utf-8"),
        "html": (out / "report.html").read_text(encoding="utf-8"),
    }


# ------------------------------------------------------------------------------------- HTML parsing
class Page(HTMLParser):
    """Headings, images, links, ids and tables (as lists of rows of cell text) of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.levels: list[tuple[int, str]] = []  # (heading level, text)
        self.all_ids: list[str] = []  # every id, repeats included
        self.alts: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self._heading: list[str] | None = None
        self._level = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
            self.all_ids.append(attrs["id"])
        if tag in ("h1", "h2", "h3", "h4"):
            self._heading = []
            self._level = int(tag[1])
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
            self.alts.append(attrs.get("alt") or "")
        elif tag in ("a", "link", "script") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3", "h4") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self.levels.append((self._level, self.headings[-1]))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def tables_with(page: Page, *header: str) -> list[list[dict[str, str]]]:
    """Every table whose header has all the given columns, each as dicts by column name."""
    return [
        [dict(zip(table[0], row, strict=True)) for row in table[1:]]
        for table in page.tables
        if table and all(h in table[0] for h in header)
    ]


def table_with(page: Page, *header: str) -> list[dict[str, str]]:
    """The first table whose header has all the given columns, as dicts by column name."""
    found = tables_with(page, *header)
    assert found, f"no table with columns {header}"
    return found[0]


def close_to_shown(shown: str, value: float) -> bool:
    """True when the text ``shown`` is ``value`` rounded to the decimals shown."""
    text = shown.replace("−", "-").replace(",", "").split(" ± ")[0]
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    tolerance = 0.5 * 10.0**-decimals if "e" not in text else abs(value) * 5e-3
    return math.isclose(float(text), value, abs_tol=tolerance * 1.0001)


# -------------------------------------------------------------------------------------------- tests
def section_headings(page: Page) -> dict[str, list[str]]:
    """The level-3 headings of each section (its per-model parts), by section title."""
    parts: dict[str, list[str]] = {}
    current = None
    for level, text in page.levels:
        if level == 2:
            current = parts.setdefault(text, [])
        elif level == 3 and current is not None:
            current.append(text)
    return parts


def test_report_has_every_section_and_a_part_per_model(report):
    page = parse(report["html"])
    for title in SECTIONS:
        assert title in page.headings
        assert f"## {_md_escape(title)}" in report["md"]
    parts = section_headings(page)
    models = {"normal_normal", "ppca", "eight_schools_noncentered"}
    assert set(parts[TRAINING]) == set(parts[POSTERIOR]) == models
    assert set(parts[ESTIMATORS]) == models - {"eight_schools_noncentered"}  # no exact value there
    assert parts[REFERENCES] == ["eight_schools_noncentered"]  # only the model without an oracle
    for title in SECTIONS:  # the fixture has every kind of data these sections show
        assert "Not in this results folder" not in section_text(report["html"], title), title


def test_a_model_without_an_oracle_is_measured_against_its_reference_and_never_called_exact(report):
    page = parse(report["html"])
    assert f"Reference: {html.escape(REFERENCE_LINE, quote=False)}" in report["html"]
    (table,) = tables_with(page, "W2 ± SE", "W2 floor")
    (line,) = table
    assert line["KL(q||p) ± SE"] == "1.250 ± 0.070"
    assert line["worst mean error (sd) ± SE"] == "0.370 ± 0.020" and line["at"] == "tau"
    assert line["worst sd error ± SE"] == "-0.410 ± 0.020" and line["sd at"] == "tau"
    assert line["W2 ± SE"] == "0.930 ± 0.040" and line["W2 floor"] == "0.610"
    assert line["k-hat"] == "0.83"
    compared = [r for t in tables_with(page, "estimator", "cell") for r in t]
    assert compared and not any("eight_schools" in str(r) for r in compared)  # no exact value there


def test_figures_are_nonempty_pngs_referenced_by_the_markdown(report):
    figures = sorted((report["out"] / "figures").glob("*.png"))
    assert len(figures) >= 12
    for figure in figures:
        data = figure.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, figure.name
    referenced = {
        line.split("](")[1].rstrip(")") for line in report["md"].splitlines() if line.startswith("![")
    }
    assert referenced == {f"figures/{f.name}" for f in figures}


def _edge(pixels: np.ndarray, width: int = 5) -> np.ndarray:
    """The outermost ``width`` rows and columns of an image, as a list of RGB pixels."""
    sides = (pixels[:width], pixels[-width:], pixels[:, :width], pixels[:, -width:])
    return np.concatenate([side.reshape(-1, 3) for side in sides])


def test_no_figure_reaches_its_edge(report):
    """Every figure keeps a white margin: nothing drawn is cut off at the image's edge."""
    for figure in sorted((report["out"] / "figures").glob("*.png")):
        pixels = np.asarray(Image.open(figure).convert("RGB"))
        assert (_edge(pixels) == 255).all(), figure.name


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # the point of the test
def test_a_label_wider_than_its_axes_is_drawn_whole(tmp_path):
    """Long cell names leave the axes narrower than its x label, which the constrained layout does not
    make room for: the figure is then drawn onto its tight bounding box instead of clipping the label."""
    from ppl_suite.report import drawing, training

    name = "a model with a long name / a guide with a long name and a longer one still / seed {}"
    frame = pd.DataFrame(
        {
            "model": "m",
            "cell": [name.format(seed) * 2 for seed in range(3)],
            "gain": [3.0, 2.0, 1.0],
            "gain_se": 0.1,
            "evidence": [2.0, 1.0, 0.5],
            "kl_drop": [1.0, 1.0, 0.5],
        }
    )
    pixels = np.asarray(Image.open(training.draw_gains(frame, tmp_path / "wide.png")).convert("RGB"))
    assert pixels.shape[1] > drawing.WIDTH * drawing.DPI + 2 * drawing.MARGIN  # wider than the figure
    assert (_edge(pixels) == 255).all()


def test_the_report_is_the_same_whatever_the_number_of_drawing_processes(report, tmp_path):
    """Figures drawn in this process only, or also in one or two spawned ones, are the same bytes."""
    from ppl_suite.report.render import write_report

    expected = {p.relative_to(report["out"]): p.read_bytes() for p in report["out"].rglob("*") if p.is_file()}
    for processes in (1,):  # the fixture was drawn by this process and a spawned one
        out = tmp_path / str(processes)
        write_report(report["store"].path, out, processes=processes)
        written = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert written.keys() == expected.keys()
        assert [name for name in expected if written[name] != expected[name]] == [], processes


def test_a_rewritten_report_keeps_the_figures_drawn_from_the_same_data(report, tmp_path):
    """A report whose inputs changed (here the manifest's commit, which no figure shows) leaves every
    figure drawn from the same data and code untouched, and draws again one whose file changed since."""
    from ppl_suite.report.render import write_report

    results = shutil.copytree(report["store"].path, tmp_path / report["store"].path.name)
    out = shutil.copytree(report["out"], tmp_path / "out")
    store = ResultsStore(results)
    store.write_manifest({**store.manifest(), schema.MANIFEST_GIT_COMMIT: "another commit"})
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) > 2
    drawn = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in figures}
    edited = figures[0]
    edited.write_bytes(b"edited by a user")
    edited_at = edited.stat().st_mtime_ns
    assert write_report(results, out, processes=1).rewritten
    kept = [p.name for p in figures if p != edited and p.stat().st_mtime_ns == drawn[p.name][1]]
    assert kept == [p.name for p in figures if p != edited]
    assert edited.read_bytes() == drawn[edited.name][0] and edited.stat().st_mtime_ns != edited_at


def test_html_stands_alone_every_image_inlined_and_every_anchor_resolves(report):
    page = parse(report["html"])
    assert page.images, "no figures in the HTML"
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG)
    for link in page.links:
        assert link.startswith("#"), f"external reference {link!r}"
        assert link[1:] in page.ids, f"dangling anchor {link!r}"
    assert "<script" not in report["html"]


def test_evidence_table_shows_the_results_table_numbers(report):
    rows = report["rows"].set_index("key")
    shown = table_with(parse(report["html"]), "log p(x)", "ELBO ± SE", "KL(q||p)", "residual (SE)")
    assert len(shown) == len(rows)
    for line in shown:
        key = f"{line['model']}/{line['backend']}/{line['guide']}/data{line['data']}/seed{line['seed']}"
        row = rows.loc[key]
        assert line["status"] == row["status"]
        if row["status"] != "ok":
            assert line["ELBO ± SE"] == "—"
            continue
        value, se = line["ELBO ± SE"].split(" ± ")
        assert close_to_shown(value, row["elbo"]) and close_to_shown(se, row["elbo_se"])
        assert close_to_shown(line["log p(x)"], row["log_evidence"])
        assert close_to_shown(line["KL(q||p)"], row["kl"])
        if row["kl_method"] == "reference":  # no exact log p(x): no identity residual to show
            assert line["residual (SE)"] == "—" and line["KL route"] == "reference"
            continue
        assert close_to_shown(line["residual (SE)"], row["residual_se"])


def _estimates_by(report: dict, name: str) -> pd.DataFrame:
    """The stored estimates of estimator ``name``, by key."""
    estimates = report["estimates"]
    return estimates[estimates[schema.ESTIMATOR] == name].set_index(schema.KEY)


def test_estimator_table_shows_the_stored_estimates(report):
    """Guide-free estimates of a fixed-θ model are one line per problem unit, whatever the number of
    cells, with the problem's own cost; with learned θ (ppca) they are one line per cell."""
    normal, ppca = tables_with(parse(report["html"]), "estimator", "estimate ± SE", "error (SE)")
    stored = _estimates_by(report, "ais")
    (problem,) = report["problems"].itertuples()
    (line,) = [line for line in normal if line["estimator"] == "ais"]
    assert line["cell"] == "data 0 (once per problem)"
    ais = stored.loc[problem.key]
    assert ais[schema.SCOPE] == schema.SCOPE_PROBLEM
    assert close_to_shown(line["estimate ± SE"], ais[schema.VALUE])
    assert close_to_shown(line["error (SE)"], (ais[schema.VALUE] - problem.log_evidence) / ais[schema.SE])
    assert close_to_shown(line["seconds"], ais[schema.SECONDS])
    rows = report["rows"].set_index("key")
    ppca_lines = {line["cell"].split(" / ")[0]: line for line in ppca if line["estimator"] == "ais"}
    assert set(ppca_lines) == set(PPCA_SHIFTS)
    for backend, line in ppca_lines.items():
        key = f"ppca/{backend}/amortized/data0/seed0"
        assert stored.loc[key, schema.SCOPE] == schema.SCOPE_CELL and pd.isna(rows.loc[key, "problem_key"])
        assert close_to_shown(line["estimate ± SE"], stored.loc[key, schema.VALUE])


def test_guide_free_estimates_are_counted_once_in_the_cost_section(report):
    """Laplace ran once for normal_normal's problem unit; AIS once there and per cell for ppca."""
    lines = table_with(parse(report["html"]), "estimator", "computed", "runs")
    cost = {(line["estimator"], line["computed"]): line for line in lines}
    assert cost[("laplace", "once per problem")]["runs"] == "1" and ("laplace", "per cell") not in cost
    assert cost[("ais", "once per problem")]["runs"] == "1"
    assert cost[("ais", "per cell")]["runs"] == str(len(PPCA_SHIFTS))
    seconds = _estimates_by(report, "laplace")[schema.SECONDS].sum()
    assert close_to_shown(cost[("laplace", "once per problem")]["seconds (total)"], seconds)


def test_failed_cell_is_listed_with_its_error(report):
    failed = report["rows"].query("status == 'failed'").iloc[0]
    first_line = failed["error"].splitlines()[0]
    failures = table_with(parse(report["html"]), "cell", "status", "error")
    assert [(f["cell"], f["status"]) for f in failures] == [(failed["key"], "failed")]
    assert failures[0]["error"] == first_line
    assert failed["key"] in report["md"] and first_line in report["md"]


def test_report_of_a_missing_folder_or_format_is_an_input_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a results folder" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path), "--format", "pdf"]) == 2
    assert "unknown report format" in capsys.readouterr().err


def test_tables_and_cli_do_not_import_plotting():
    code = (
        "import sys, ppl_suite.cli, ppl_suite.report.rows, ppl_suite.report.run_tables, "
        "ppl_suite.report.document; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


CHECK = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || "error"));
}, true);
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, " ")); };
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var out = document.createElement("pre");
  out.id = "__check";
  out.textContent = JSON.stringify({images: images.length, broken: broken.map(function (i) { return i.alt; }),
                                    errors: window.__errors, height: document.documentElement.scrollHeight,
                                    unnamed: images.filter(function (i) { return !i.alt.trim(); }).length});
  document.body.appendChild(out);
});
</script>"""


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
VIEWPORT = (1280, 900)  # a laptop's window: the first screen
SCROLL_POSITIONS = 3  # the top, the middle and the end of the page are screenshot


def test_a_white_screen_is_blank_and_a_figure_is_not():
    white = np.full((90, 128, 3), 255, dtype=np.uint8)
    assert not _not_blank(white)
    drawn = white.copy()
    drawn[10:30, 10:60] = (31, 111, 180)
    drawn[40:42, 10:90] = 0
    assert _not_blank(drawn)


def _not_blank(pixels: np.ndarray) -> bool:
    """An RGB screenshot shows something: more than 1% of its pixels are not white, in more than two
    colours (text, a figure or a table, not an empty or single-colour page)."""
    ink = (pixels < 245).any(axis=2)
    return ink.mean() > 0.01 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package: chromium)")
def test_html_shows_every_image_in_headless_chromium_without_console_errors(report, tmp_path):
    """In Chromium: every image loads and has alt text, there is no console error, and screenshots at
    three scroll positions (top, middle, end of the page) are not blank."""
    page = tmp_path / "page.html"
    page.write_text(report["html"].replace("<head>", "<head>" + CHECK, 1), encoding="utf-8")
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    flags = [*CHROMIUM_FLAGS, profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]
    done = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    start = done.stdout.find('<pre id="__check">')
    assert start >= 0, f"page did not load: {done.stderr[-2000:]}"
    check = json.loads(html.unescape(done.stdout[start:].split(">", 1)[1].split("</pre>", 1)[0]))
    assert check["images"] == len(parse(report["html"]).images) > 0
    assert check["broken"] == [] and check["unnamed"] == 0
    assert check["errors"] == []
    assert "Uncaught" not in done.stderr
    # the whole page in one window as tall as the page, then one viewport at each scroll position
    height = int(check["height"])
    shot, plain = tmp_path / "page.png", tmp_path / "plain.html"
    plain.write_text(report["html"], encoding="utf-8")  # the page as shipped, without the check script
    window = f"--window-size={VIEWPORT[0]},{height}"
    subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, profile, window, f"--screenshot={shot}", plain.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[0] >= min(height, VIEWPORT[1])
    tops = np.linspace(0, max(pixels.shape[0] - VIEWPORT[1], 0), SCROLL_POSITIONS).astype(int)
    for top in tops:
        assert _not_blank(pixels[top : top + VIEWPORT[1]]), f"blank screen at scroll position {top}"


def test_a_results_folder_without_cells_says_so_and_leaves_out_every_section_with_nothing_to_say(tmp_path):
    """The first screen says the folder holds nothing; the sections of cells are neither written nor
    listed in the contents, and every section written has a body."""
    from ppl_suite.report.render import write_report

    store = ResultsStore(tmp_path / "empty")
    store.write_manifest({"config": {"models": []}, "versions": {}, "started": "2000-01-01T00:00:00+00:00"})
    written = write_report(store.path, tmp_path / "out", "md")
    text = written["md"].read_text(encoding="utf-8")
    assert set(written) == {"md"} and not (tmp_path / "out" / "report.html").exists()
    assert "This results folder holds no cell and no study." in text
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ") and line != "## Contents"]
    assert headings == [_md_escape(title) for title in (OPENING, SECTIONS[1], SECTIONS[-1])]
    contents = text.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    assert [line.split("](")[0][3:] for line in contents.split("\n") if line.startswith("- [")] == headings
    for body in text.split("\n## ")[1:]:
        assert body.split("\n", 1)[1].strip(), body
    assert "Not in this results folder: any" not in text  # no section stands for absent cells


def _pair(elbo_a: float, elbo_b: float, se: float) -> pd.DataFrame:
    """Two backends' ok rows for one model, guide and seed, with the given ELBOs and a common SE."""
    base = {"model": "m", "guide": "g", "data_seed": 0, "seed": 0, "status": "ok", "kl_method": "analytic"}
    return pd.DataFrame(
        [
            {
                **base,
                "key": f"m/{b}/g/data0/seed0",
                "backend": b,
                "elbo": e,
                "elbo_se": se,
                "kl": -e,
                "kl_mc_se": 0.0,
            }
            for b, e in (("pyro", elbo_a), ("numpyro", elbo_b))
        ]
    )


def test_exact_values_agree_to_rounding_and_real_differences_are_still_flagged():
    """An enumerated ELBO (SE 0) computed by two libraries differs by ~1e-13: that is agreement, not an
    'infinite' number of SEs; a difference of 1e-3 nats with SE 0 is still flagged."""

    same = agreement_table(_pair(-112.6724530535, -112.6724530535 + 4e-13, 0.0))
    assert abs(same["ΔELBO (SE)"].iloc[0]) < 1e-2 and same["flag"].iloc[0] == ""
    apart = agreement_table(_pair(-112.672, -112.673, 0.0))
    # SE 0 plus the allowance of two conforming implementations (1e-6 nats): 1e-3 is ~1e3 of it
    assert apart["ΔELBO (SE)"].iloc[0] > 1e2 and apart["flag"].iloc[0] != ""
    noisy = agreement_table(_pair(-112.672, -112.673, 1e-3))  # 1e-3 apart, SE sqrt(2) * 1e-3
    assert noisy["ΔELBO (SE)"].iloc[0] == pytest.approx(1 / math.sqrt(2), rel=1e-4)


# ------------------------------------------------------------------------------ reliability labels
def test_unreliable_estimates_show_their_diagnostic_and_no_standard_error(report):
    """An estimate labelled unreliable shows no SE and no error in SE units, but the label with its
    diagnostic; the other cells' estimates by the same estimator keep theirs."""
    shown = table_with(parse(report["html"]), "estimator", "estimate ± SE", "error (SE)", "reliability")
    iwae = {line["cell"].split(" / ")[0]: line for line in shown if line["estimator"] == "iwae"}
    unreliable = iwae.pop("numpyro")
    assert "±" not in unreliable["estimate ± SE"] and unreliable["error (SE)"] == "—"
    assert unreliable["reliability"] == f"unreliable: {UNRELIABLE_IWAE}"
    assert unreliable["error (nats)"] != "—"
    # IWAE is a bound: its SE is its own, its gap to log p(x) in nats and never in SE units
    assert iwae and all("±" in line["estimate ± SE"] and line["error (SE)"] == "—" for line in iwae.values())
    assert all(line["reliability"] == "reliable" for line in iwae.values())


def test_an_approximation_shows_its_error_in_nats_and_never_plus_minus_zero(report):
    shown = table_with(parse(report["html"]), "estimator", "estimate ± SE", "error (nats)", "reliability")
    (line,) = [line for line in shown if line["estimator"] == "laplace"]  # once, for the problem
    assert "±" not in line["estimate ± SE"] and line["error (SE)"] == "—"
    assert line["reliability"] == "approximation"
    (problem,) = report["problems"].itertuples()
    laplace = _estimates_by(report, "laplace").loc[problem.key]
    assert close_to_shown(line["error (nats)"], laplace[schema.VALUE] - problem.log_evidence)
    assert not re.search(r"± 0(?![.\d])", report["md"] + report["html"])


def test_estimates_without_a_reliability_label_read_as_reliable_except_approximations():

    row = {"key": "m/pyro/g/data0/seed0", "model": "m", "backend": "pyro", "guide": "g", "data_seed": 0}
    row |= {"seed": 0, "status": "ok", "log_evidence": -10.0}
    key = row["key"]
    estimates = [
        _estimate(key, schema.SCOPE_CELL, "ais", -10.2, 0.1, 100),
        _estimate(key, schema.SCOPE_CELL, "laplace", -9.9, 0.0, 1),
        _estimate(key, schema.SCOPE_CELL, "psis", 0.3, math.nan, 100),
    ]
    estimates = schema.estimates_frame([e | {schema.RELIABILITY: ""} for e in estimates])
    table = estimator_table(pd.DataFrame([row]), estimates, pd.DataFrame()).set_index("estimator")
    assert list(table.index) == ["ais", "laplace"]  # k-hat is no estimate of log p(x)
    assert table.loc["ais", "reliability"] == "reliable"
    assert table.loc["ais", "error (SE)"] == pytest.approx(-2.0)
    assert table.loc["laplace", "reliability"] == "approximation"
    assert np.isnan(table.loc["laplace", "SE"]) and np.isnan(table.loc["laplace", "error (SE)"])
    assert table.loc["laplace", "error (nats)"] == pytest.approx(0.1)


# ------------------------------------------------------------------- marginals at each backend's θ
def _summary_means(page: Page, source: str) -> dict[str, float]:
    """Coordinate -> mean of the ArviZ summary lines of ``source`` in the ppca marginals table."""
    for table in page.tables:
        if table and "draws of" in table[0]:
            lines = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
            chosen = {line["coordinate"]: float(line["mean"]) for line in lines if line["draws of"] == source}
            if chosen:
                return chosen
    raise AssertionError(f"no summary of {source!r}")


def test_each_backends_q_is_shown_against_the_exact_posterior_at_its_own_theta(report):
    """ppca-like cells: pyro's stored posterior draws lie PPCA_SHIFTS apart from handrolled's. Each
    backend's exact reference in the marginals is its own cell's draws, not the first backend's."""
    page = parse(report["html"])
    rows = report["rows"]
    for backend in PPCA_SHIFTS:
        row = rows[(rows["model"] == "ppca") & (rows["backend"] == backend)].iloc[0]
        draws = report["store"].artifacts(row["digest"])["posterior_draws"]
        means = _summary_means(page, f"exact posterior (θ of {backend})")
        labels = json.loads(row["draw_labels"])
        assert set(means) == set(labels)
        for i, label in enumerate(labels):
            assert close_to_shown(f"{means[label]:.4g}", draws[:, i].mean()), (backend, label)
        assert _summary_means(page, f"q ({backend})")  # beside its own q


def test_marginals_figure_gets_one_exact_reference_per_backend_when_theta_differs(
    report, tmp_path, monkeypatch
):
    """The figure is handed each backend's own posterior draws where they differ, one shared
    reference where every backend stored the same draws (fixed θ). (Their densities are what it
    draws: ``marginal_densities``, left out here, turns the draws into them.)"""
    from ppl_suite.report import posterior
    from ppl_suite.report.document import Context

    calls: list[tuple] = []
    monkeypatch.setattr(posterior, "draw_marginals", lambda *args: calls.append(args) or args[-1])
    monkeypatch.setattr(posterior, "marginal_densities", lambda *args: args)
    context = Context(report["store"], tmp_path)
    rows = context.rows
    posterior.marginals_part(context, "ppca", of_model(rows, "ppca"))
    _, panel_rows, _, _, _ = calls.pop()
    references = {row["name"]: row["reference"] for row in panel_rows}
    assert set(references) == set(PPCA_SHIFTS)
    for row in panel_rows:  # each backend's q beside its own posterior
        assert list(row["fitted"]) == [row["name"]]
    for backend in PPCA_SHIFTS:
        digest = rows[(rows["model"] == "ppca") & (rows["backend"] == backend)]["digest"].iloc[0]
        np.testing.assert_array_equal(
            references[backend], report["store"].artifacts(digest)["posterior_draws"]
        )
    assert not np.array_equal(references["pyro"], references["handrolled"])
    posterior.marginals_part(context, "normal_normal", of_model(rows, "normal_normal"))
    _, (shared,), name, _, _ = calls.pop()
    assert shared["reference"] is not None and set(shared["fitted"]) == {"pyro", "numpyro", "handrolled"}
    assert name == "exact posterior"
    posterior.marginals_part(
        context, "eight_schools_noncentered", of_model(rows, "eight_schools_noncentered")
    )
    assert calls.pop()[2] == "NUTS reference posterior"  # measured against a reference


def _pixels(draw) -> np.ndarray:
    """The RGBA pixels of a small figure of one axis, drawn by ``draw(axis)``, its tick labels sized as
    ``draw_marginals`` sizes them (after ArviZ's own size)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2.0, 1.5), dpi=50)
    axis = figure.subplots()
    draw(axis)
    axis.tick_params(labelsize=7)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ArviZ's own use of matplotlib
@pytest.mark.parametrize("fill", [True, False])
@pytest.mark.parametrize("discrete", [False, True])
def test_marginal_densities_are_drawn_as_arviz_plot_dist_draws_them(fill, discrete):
    """A coordinate's density (``numbers.marginal_density``: ArviZ's kde, or for integer draws its
    histogram) drawn by the report gives the pixels ``arviz.plot_dist`` gives for the same draws, the
    posterior's (filled) and q's (a line) alike."""
    import arviz as az

    from ppl_suite.report import numbers, posterior

    rng = np.random.default_rng(0)
    draws = rng.poisson(3.0, size=500).astype(float) if discrete else rng.normal(size=500)
    density = numbers.marginal_density(draws)
    assert density.kind == ("hist" if discrete else "kde")
    bars = {"alpha": 0.35, "rwidth": 0.8} if fill else {"histtype": "step", "linewidth": 1.5}
    lines = {"linewidth": 1.2 if fill else 1.6, "linestyle": "-"}
    shaded = {"alpha": 0.25} if fill else {}
    values = draws.astype(int) if discrete else draws
    np.testing.assert_array_equal(
        _pixels(lambda axis: posterior._density(axis, density, "C1", fill)),
        _pixels(
            lambda axis: az.plot_dist(
                values, ax=axis, color="C1", hist_kwargs=bars, plot_kwargs=lines, fill_kwargs=shaded
            )
        ),
    )


def test_the_posterior_summary_is_arviz_summary_of_each_coordinate():
    """Each line of the summary table holds the numbers ``az.summary`` gives for that coordinate's
    draws taken as a variable of its own (one chain), to the bit."""
    import arviz as az

    from ppl_suite.report.posterior import posterior_summary

    rng = np.random.default_rng(1)
    labels = ["a", "b[0]", "b[1]"]
    draws = {"posterior": rng.normal(size=(700, 3)), "q (pyro)": rng.gamma(2.0, size=(500, 4))}
    table = posterior_summary(draws, labels)
    assert list(table["coordinate"]) == [label for label in labels for _ in draws]
    for source, values in draws.items():
        ours = table[table["draws of"] == source].set_index("coordinate").drop(columns="draws of")
        per_coordinate = {label: values[None, :, i] for i, label in enumerate(labels)}
        theirs = az.summary(az.from_dict(posterior=per_coordinate), kind="stats", round_to="none")
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True, check_names=False)


# -------------------------------------------------------------------------------- partial results
TIMEOUT_ERROR = "TimeoutError: cell | ran past *30 s* [limit] <timeout> `slow`\nWorker replaced."
FAILED_ERROR = "ValueError: prior_scale | must be > 0, got *-1*\nTraceback (most recent call last):\n  ..."
ODD_MODEL = "odd|model*_x"  # a plug-in model's name with Markdown's markup characters


def _unfinished(store: ResultsStore, cell: Cell, status: str, error: str) -> None:
    """A cell that did not finish, with the columns its writer gives it: identity, status, error and
    wall seconds, nothing else (no ELBO, no timings)."""
    identity = {name: getattr(cell, name) for name in ("model", "backend", "guide", "data_seed", "seed")}
    row = {"key": cell.key, **identity, "status": status, "error": error, "wall_seconds": 30.0}
    store.write(cell, Record(row, np.empty(0)))


def _manifest(store: ResultsStore, planned: list[str]) -> None:
    store.write_manifest(
        {"config": {}, "versions": {}, "cells": planned, "started": "2000-01-01T00:00:00+00:00"}
    )


def _unfinished_folder(path: Path, status: str, error: str) -> list[Cell]:
    store = ResultsStore(path)
    cells = [Cell("normal_normal", backend, "mean_field") for backend in ("pyro", "numpyro")]
    cells.append(Cell(ODD_MODEL, "pyro", "mean_field"))
    _manifest(store, [cell.key for cell in cells])
    for cell in cells:
        _unfinished(store, cell, status, error)
    store.finalize()
    return cells


def _report_of(results: Path, out: Path) -> dict[str, str]:
    """``ppl-suite report`` of ``results`` (exit code 0), its Markdown and HTML."""
    assert cli.main(["report", str(results), "--out", str(out)]) == 0
    return {kind: (out / f"report.{kind}").read_text(encoding="utf-8") for kind in ("md", "html")}


def _markdown_as_html(text: str) -> Page:
    """The Markdown report as a CommonMark viewer with GitHub's tables and strikethrough shows it."""
    markdown_it = pytest.importorskip("markdown_it")
    return parse(markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))


def _assert_markdown_shows_what_html_shows(written: dict[str, str]) -> None:
    """Every table cell and heading of the Markdown, as rendered, reads as in the HTML page: no string
    from a model, an error or a parameter is taken for markup."""
    markdown, page = _markdown_as_html(written["md"]), parse(written["html"])
    assert markdown.tables == page.tables
    assert [h for h in markdown.headings if h != "Contents"] == page.headings


@pytest.mark.parametrize(("status", "error"), [("failed", FAILED_ERROR), ("timeout", TIMEOUT_ERROR)])
def test_a_folder_where_no_cell_finished_gets_a_report_listing_every_cell(tmp_path, status, error):
    cells = _unfinished_folder(tmp_path / "results", status, error)
    written = _report_of(tmp_path / "results", tmp_path / "out")
    listed = table_with(parse(written["html"]), "cell", "status", "error")
    first_line = error.splitlines()[0]
    assert sorted((f["cell"], f["status"], f["error"]) for f in listed) == sorted(
        (cell.key, status, first_line) for cell in cells
    )
    assert f"This run: {len(cells)} cells ({len(cells)} {status})" in written["md"]
    assert f"{len(cells)} units did not finish ({len(cells)} {status})" in written["md"]  # first screen
    _assert_markdown_shows_what_html_shows(written)


def test_a_mixed_folder_lists_failed_timed_out_and_never_run_cells_beside_the_finished_ones(report, tmp_path):
    """The fixture's real cells (one ok, one failed), a timed-out cell of a model whose name has
    Markdown's markup characters, and a planned cell that never ran."""
    store = ResultsStore(tmp_path / "results")
    real = report["rows"].query("model == 'normal_normal' and backend == 'handrolled'")
    for _, row in real.iterrows():
        cell = Cell(row["model"], row["backend"], row["guide"], row["data_seed"], row["seed"])
        stored = {k: v for k, v in row.items() if k not in ("digest", "schema_version") and not _missing(v)}
        estimates = report["estimates"]
        own = estimates[(estimates["key"] == row["key"]) & estimates["estimator"].isin(EVALUATION)]
        arrays = report["store"].artifacts(row["digest"])
        store.write(
            cell, Record(stored, report["store"].trace(row["digest"]), arrays, own.to_dict("records"))
        )
    late = Cell(ODD_MODEL, "numpyro", "mean_field", seed=3)
    _unfinished(store, late, "timeout", TIMEOUT_ERROR)
    never = Cell("normal_normal", "pyro", "mean_field", seed=7)  # planned, but the run ended first
    _manifest(store, [*real["key"], late.key, never.key])
    store.finalize()
    written = _report_of(store.path, tmp_path / "out")
    page = parse(written["html"])
    listed = {f["cell"]: (f["status"], f["error"]) for f in table_with(page, "cell", "status", "error")}
    failed = real.query("status == 'failed'").iloc[0]
    assert listed == {
        failed["key"]: ("failed", failed["error"].splitlines()[0]),
        late.key: ("timeout", TIMEOUT_ERROR.splitlines()[0]),
        never.key: ("not run", listed[never.key][1]),
    }
    left_out = [title for title in SECTIONS if title not in page.headings]
    assert left_out == [ESTIMATORS, AGREEMENT]  # its ok cell has no log p(x) estimate, and one backend
    parts = section_headings(page)
    assert parts[TRAINING] == parts[POSTERIOR] == ["normal_normal"]  # from its ok cell
    _assert_markdown_shows_what_html_shows(written)


def _missing(value: object) -> bool:
    """NaN: a column this row does not have (the table has it from other rows)."""
    return isinstance(value, float) and math.isnan(value)


def test_markdown_escapes_model_and_error_strings_as_html_does(tmp_path):
    """A model name and an error with |, *, _, backticks, < and [ ] read as themselves in Markdown's
    table cells and headings, and a backtick fence in an error cannot end its code block."""
    from ppl_suite.report.render import _md_escape

    results = tmp_path / "results"
    error = "RuntimeError: a | b *c* _d_ `e` <f> [g](h) & ~i~ $j$\n```\nnot markdown *k*"
    cells = _unfinished_folder(results, "failed", error)
    written = _report_of(results, tmp_path / "out")
    assert f"| {_md_escape(cells[-1].key)} | failed | {_md_escape(error.splitlines()[0])} |" in written["md"]
    assert f"normal_normal and {_md_escape(ODD_MODEL)})" in written["md"]  # the run line of the first screen
    assert "````\n" + error + "\n````" in written["md"]
    markdown = _markdown_as_html(written["md"])
    assert f"{cells[-1].key} (failed)" in markdown.headings
    _assert_markdown_shows_what_html_shows(written)


def test_a_rewritten_report_removes_only_its_own_stale_figures(tmp_path):
    from ppl_suite.report.render import forget_stale_figures

    for name in ("old.png", "kept.png", "users.png"):
        (tmp_path / name).write_bytes(b"png")
    forget_stale_figures(tmp_path, {"old.png", "kept.png"})  # an earlier report drew these two
    forget_stale_figures(tmp_path, {"kept.png", "new.png"})  # this one no longer draws old.png
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["kept.png", "users.png"]


# ------------------------------------------------------------------------------------ the first screen
def section_text(page_html: str, title: str) -> str:
    """The plain text of the section titled ``title`` (tags removed, entities unescaped)."""
    start = page_html.index(f"<h2>{html.escape(title)}</h2>")
    body = page_html[start + len(f"<h2>{html.escape(title)}</h2>") : page_html.index("</section>", start)]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_first_screen_answers_with_this_runs_identity_residuals(report):
    """The opening states the count of residuals and the largest |z|, as the store has them, and
    comes before the table of contents."""
    rows = report["rows"]
    ok = rows[rows["status"] == "ok"]
    z = ok["residual_se"].to_numpy(dtype=float)
    z = z[np.isfinite(z)]
    text = section_text(report["html"], OPENING)
    assert text.startswith("For a fixed model, yes. For every q, the evidence splits exactly into two terms:")
    assert f"In the {z.size} cells of " in text and f"largest |z| = {np.abs(z).max():.2f}" in text
    assert f"This run: {len(rows)} cells" in text
    assert report["html"].index(f"<h2>{html.escape(OPENING)}</h2>") < report["html"].index("class='toc'")


def test_first_screen_splits_the_elbo_gain_of_learned_theta_as_the_store_has_it(report):
    """For ppca (learned θ): ELBO gain = Δlog p_θ(x) + (−ΔKL), first to last checkpoint, with SEs from
    the stored training curve (exact log p_θ(x) and closed-form KL: SE 0, shown as exact)."""
    from ppl_suite.report.render import format_pm

    rows = report["rows"]
    first = rows[rows["model"] == "ppca"].sort_values(
        "backend", key=lambda b: b.map({"handrolled": 2, "pyro": 0})
    )
    arrays = report["store"].artifacts(first["digest"].iloc[0])
    curve = {name: arrays[f"training.{name}"] for name in ("elbo", "elbo_se", "log_evidence", "kl")}
    gain = curve["elbo"][-1] - curve["elbo"][0]
    gain_se = math.hypot(curve["elbo_se"][0], curve["elbo_se"][-1])
    evidence = curve["log_evidence"][-1] - curve["log_evidence"][0]
    kl_drop = curve["kl"][0] - curve["kl"][-1]
    assert evidence + kl_drop == pytest.approx(gain, abs=4 * gain_se)  # the identity at both ends
    text = section_text(report["html"], OPENING)
    expected = (
        f"the ELBO rose by {format_pm(gain, gain_se)} nats = Δlog p_θ(x) {evidence:.4g} nats (exact) + "
        f"(−ΔKL) {kl_drop:.4g} nats (exact)"
    )
    assert expected in text
    assert "In this run ppca learns θ" in text
    assert (report["out"] / "figures" / "training-gains.png").is_file()


def test_ids_are_unique_every_image_has_alt_text_and_the_contents_reach_each_model(report):
    page = parse(report["html"])
    assert len(page.all_ids) == len(set(page.all_ids))
    assert page.alts and all(alt.strip() for alt in page.alts)
    for model in ("normal_normal", "ppca", "eight_schools_noncentered"):
        assert f"#training-how-the-elbo-rises-{model.replace('_', '-')}" in page.links


def _subset(report: dict, path: Path, models: set[str]) -> Path:
    """A results folder holding the fixture's cells of ``models`` (rows, traces, artifacts, estimates)."""
    store = ResultsStore(path)
    rows, estimates = report["rows"], report["estimates"]
    chosen = rows[rows["model"].isin(models) & (rows["status"] == "ok")]
    for _, row in chosen.iterrows():
        cell = Cell(row["model"], row["backend"], row["guide"], row["data_seed"], row["seed"])
        stored = {k: v for k, v in row.items() if k not in ("digest", "schema_version") and not _missing(v)}
        own = estimates[estimates["key"] == row["key"]].to_dict("records")
        arrays = report["store"].artifacts(row["digest"])
        store.write(cell, Record(stored, report["store"].trace(row["digest"]), arrays, own))
    _manifest(store, list(chosen["key"]))
    store.finalize()
    return store.path


def test_a_run_of_one_fixed_model_reads_right(report, tmp_path):
    """Only normal_normal: no learned θ, no reference; every section still present, and the first
    screen names this run's model alone."""
    written = _report_of(_subset(report, tmp_path / "results", {"normal_normal"}), tmp_path / "out")
    page = parse(written["html"])
    assert all(title in page.headings for title in SECTIONS)
    text = section_text(written["html"], OPENING)
    assert "of 1 model (normal_normal)" in text and "ppca" not in written["html"]
    assert "No model of this run learns its parameters." in text
    assert "The identity holds in this run. In the 3 cells of every model" in text
    said = section_text(written["html"], REFERENCES)
    assert said == "normal_normal has an exact log p(x): no NUTS reference was needed for it."


def test_a_run_of_reference_models_only_reads_right(report, tmp_path):
    """Only the model without an oracle: the first screen says the identity cannot be checked term by
    term and gives the reference KL; nothing calls its log p(x) exact."""
    written = _report_of(
        _subset(report, tmp_path / "results", {"eight_schools_noncentered"}), tmp_path / "out"
    )
    page = parse(written["html"])
    left_out = [title for title in SECTIONS if title not in page.headings]
    assert left_out == [ESTIMATORS, AGREEMENT]  # nothing exact, one cell
    assert f"<a href='#{slug(ESTIMATORS)}'>" not in written["html"]  # nor in the contents
    text = section_text(written["html"], OPENING)
    assert "No cell of this run has an exact log p(x)" in text
    assert "eight_schools_noncentered has no closed form: in its 1 cell the KL" in text
    assert "1.250 ± 0.070 nats" in text
    assert "exact log p(x) (flat" not in written["html"]  # its traces' flat line is the AIS estimate
    assert section_headings(page)[REFERENCES] == ["eight_schools_noncentered"]


def test_sections_are_found_by_discovery_and_ordered_in_one_place():
    """Every module of the report package is imported; a section from a module ORDER does not name
    goes where ORDER has "*" (before backend agreement)."""
    from ppl_suite.report import order

    found = order.sections()
    ranks = [order.rank(type(section).__module__) for section in found]
    assert ranks == sorted(ranks)
    assert [s.title for s in found][:3] == [OPENING, "Reading this report", "The identity, cell by cell"]
    assert order.rank("ppl_suite.report.a_new_topic") < order.rank("ppl_suite.report.agreement")


def test_normal_quantiles_are_blooms_plotting_positions_of_the_standard_normal():
    from scipy import stats

    from ppl_suite.report import numbers

    n = 58
    expected = stats.norm.ppf((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    np.testing.assert_allclose(numbers.normal_quantiles(n), expected, rtol=0, atol=1e-12)


def test_the_gain_split_is_the_two_ends_differences_with_their_ses_in_quadrature():
    from ppl_suite.report import numbers

    curve = {
        "step": np.array([0.0, 10.0, 100.0]),
        "elbo": np.array([-50.0, -20.0, -10.5]),
        "elbo_se": np.array([0.3, 0.2, 0.4]),
        "log_evidence": np.array([-40.0, -15.0, -10.0]),
        "log_evidence_se": np.array([0.6, 0.1, 0.8]),
        "kl": np.array([10.0, 5.0, 0.5]),
        "kl_se": np.array([0.0, 0.0, 0.0]),
    }
    split = numbers.gain_split(curve)
    assert split["gain"] == pytest.approx(39.5) and split["gain_se"] == pytest.approx(0.5)
    assert split["evidence"] == pytest.approx(30.0) and split["evidence_se"] == pytest.approx(1.0)
    assert split["kl_drop"] == pytest.approx(9.5) and split["kl_drop_se"] == 0.0
    assert split["evidence"] + split["kl_drop"] == pytest.approx(split["gain"])
    assert (split["start"], split["end"]) == (0.0, 100.0)


def test_links_are_relative_to_the_report_folder_and_resolve(tmp_path):
    import re
    import urllib.parse

    from ppl_suite.report.document import Links
    from ppl_suite.report.render import to_html, to_markdown

    target = tmp_path / "results" / "draws" / "a b" / "q.nc"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    report = tmp_path / "reports" / "mine"
    report.mkdir(parents=True)
    parts = [("Files", [Links((("cell", (("q.nc", target),)),), "caption")])]
    for text in (to_markdown("t", "s", parts, report), to_html("t", "s", parts, report)):
        (link,) = re.findall(r"(?:\]\(|href=')([^)']+\.nc)", text)
        assert not link.startswith("/")
        assert (report / urllib.parse.unquote(link)).resolve() == target.resolve()
