"""The VAE: evidence by AIS, the inference-gap decomposition, the ELBO's rise split into its two terms, BDMC
and the backends' agreement. Reads the tables the VAE study stored (``ppl_suite.vae.results``) and
draws them; every number shown is stored, none is computed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.report import drawing, words
from ppl_suite.report.document import Block, Context, Heading, Image, Table, Text, register
from ppl_suite.vae import results as r

TITLE = "The VAE: evidence by AIS and the inference gaps"


def _tables(context: Context) -> dict[str, pd.DataFrame]:
    return context.store.vae_tables()


def _pm(value: float, se: float) -> str:
    from ppl_suite.report.render import format_pm  # deferred: render imports the drawing layer

    return format_pm(value, se)


@drawing.styled
def draw_gaps(backends: pd.DataFrame, path: Path) -> Path:
    """Per backend, KL(q || p(z|x)) = log p - ELBO[encoder] as a stacked bar: the approximation gap
    (the diagonal Gaussian family) under the amortization gap (the encoder), each with its SE."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(drawing.WIDTH, 1.4 + 0.5 * len(backends)), layout="constrained")
    axis = figure.subplots()
    y = np.arange(len(backends))
    approximation, amortization = backends[r.APPROXIMATION].to_numpy(), backends[r.AMORTIZATION].to_numpy()
    axis.barh(y, approximation, color="#7f9fbf", label="approximation gap: log p − ELBO[q*]")
    axis.barh(
        y,
        amortization,
        left=approximation,
        color="#e0a100",
        label="amortization gap: ELBO[q*] − ELBO[encoder]",
    )
    axis.errorbar(
        approximation, y, xerr=2 * backends[r.se(r.APPROXIMATION)], fmt="none", color="black", capsize=3
    )
    axis.errorbar(
        approximation + amortization, y, xerr=2 * backends[r.se(r.KL)], fmt="none", color="black", capsize=3
    )
    axis.set_yticks(y, backends[r.BACKEND])
    axis.invert_yaxis()
    axis.set_xlabel("nats per test image (bars: ± 2 SE)")
    figure.legend(loc="outside lower center", ncol=2, frameon=False)
    figure.suptitle("KL(q(z|x) || p(z|x)) = approximation gap + amortization gap", fontweight="bold")
    return drawing.save(figure, path)


@drawing.styled
def draw_training(checkpoints: pd.DataFrame, whole: pd.DataFrame, path: Path) -> Path:
    """Top left: log p(x) and the ELBO at each checkpoint; top right: the KL between them (steps on a
    symmetric-log axis, 0 included). Bottom: per backend, the ELBO's gain over the whole of training
    as one bar, Δlog p (solid) then −ΔKL (hatched), each labelled with its value ± SE."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    figure = Figure(figsize=(drawing.WIDTH, 5.6 + 0.35 * len(whole)), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.0, 0.35 + 0.12 * len(whole)])
    left, middle = top.subplots(1, 2)
    right = bottom.subplots()
    for backend, rows in checkpoints.groupby(r.BACKEND, sort=False):
        rows = rows.sort_values(r.STEP)
        color = drawing.backend_color(backend)
        left.errorbar(rows[r.STEP], rows[r.LOG_P], yerr=2 * rows[r.se(r.LOG_P)], color=color, marker="o",
                      ms=3, label=f"{backend}: log p(x)")  # fmt: skip
        left.errorbar(rows[r.STEP], rows[r.ELBO], yerr=2 * rows[r.se(r.ELBO)], color=color, marker="s", ms=3,
                      linestyle="--", label=f"{backend}: ELBO")  # fmt: skip
        middle.errorbar(rows[r.STEP], rows[r.KL], yerr=2 * rows[r.se(r.KL)], color=color, marker="o", ms=3,
                        label=backend)  # fmt: skip
    for axis, title, label in (
        (left, "log p(x) (AIS, solid) and the ELBO (dashed)", "nats per image"),
        (middle, "KL(q(z|x) || p(z|x)) = log p(x) − ELBO", "nats per image"),
    ):
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.set_title(title)
    middle.set_ylim(bottom=0.0)
    middle.legend(frameon=False)
    y = np.arange(len(whole))
    log_p, kl_fall = whole[r.LOG_P_GAIN].to_numpy(), whole[r.KL_FALL].to_numpy()
    colors = [drawing.backend_color(backend) for backend in whole[r.BACKEND]]
    right.barh(y, log_p, color=colors)
    right.barh(y, kl_fall, left=log_p, color=colors, alpha=0.45, hatch="///")
    for k, row in enumerate(whole.itertuples(index=False)):
        text = (f"Δlog p {_pm(getattr(row, r.LOG_P_GAIN), getattr(row, r.se(r.LOG_P_GAIN)))}  +  "
                f"−ΔKL {_pm(getattr(row, r.KL_FALL), getattr(row, r.se(r.KL_FALL)))}")  # fmt: skip
        right.text(0.01 * max(log_p.max(), 1e-9), k, text, va="center", fontsize=8, color="white",
                   fontweight="bold")  # fmt: skip
    right.axvline(0.0, color="black", linewidth=0.8)
    right.set_yticks(y, whole[r.BACKEND])
    right.invert_yaxis()
    first, last = int(whole[r.STEP_FROM].min()), int(whole[r.STEP_TO].max())
    right.set_xlabel(f"the ELBO's gain from step {first} to step {last}, nats per image")
    right.set_title("The ELBO's gain = Δlog p(x) (solid) + (−ΔKL) (hatched)")
    keys = [
        Patch(facecolor="#777777", label="Δlog p(x): the model got better"),
        Patch(
            facecolor="#777777",
            alpha=0.45,
            hatch="///",
            label="−ΔKL: q got closer to the posterior (drawn back when negative: further)",
        ),
    ]
    bottom.legend(handles=keys, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return drawing.save(figure, path)


@drawing.styled
def draw_runs(runs: pd.DataFrame, path: Path) -> Path:
    """One panel per quantity (the encoder's test ELBO, IWAE-K): each training run of each backend as a
    dot (run 0, the one evaluated in full, ringed), with its evaluation SE as a ± 2 SE bar."""
    from matplotlib.figure import Figure

    quantities = ((r.ELBO, "the encoder's ELBO"), (r.IWAE, "IWAE-K (log p from below)"))
    figure = Figure(figsize=(drawing.WIDTH, 3.0), layout="constrained")
    backends = list(dict.fromkeys(runs[r.BACKEND]))
    for axis, (quantity, title) in zip(figure.subplots(1, 2), quantities, strict=True):
        for j, backend in enumerate(backends):
            rows = runs[runs[r.BACKEND] == backend].sort_values(r.RUN)
            spread = np.linspace(-0.15, 0.15, len(rows)) if len(rows) > 1 else np.zeros(1)
            color = drawing.backend_color(backend)
            axis.errorbar(j + spread, rows[quantity], yerr=2 * rows[r.se(quantity)], fmt="o", ms=4,
                          color=color, capsize=2)  # fmt: skip
            first = rows[r.RUN] == 0
            axis.plot(
                j + spread[first.to_numpy()], rows.loc[first, quantity], "o", ms=9, mfc="none", color="black"
            )
        axis.set_xticks(range(len(backends)), backends)
        axis.set_xlim(-0.6, len(backends) - 0.4)
        axis.set_ylabel("nats per test image")
        axis.set_title(title)
    figure.suptitle("Training runs per backend (ringed: run 0, evaluated in full; bars ± 2 evaluation SE)",
                    fontweight="bold")  # fmt: skip
    return drawing.save(figure, path)


def backend_table(backends: pd.DataFrame) -> pd.DataFrame:
    """The per-backend table as shown (stored columns, renamed)."""
    ok = backends[backends[r.STATUS] == r.OK]
    return pd.DataFrame(
        {
            "backend": ok[r.BACKEND],
            "log p(x) (AIS)": ok[r.LOG_P],
            "log p SE": ok[r.se(r.LOG_P)],
            "IWAE-K": ok[r.IWAE],
            "IWAE SE": ok[r.se(r.IWAE)],
            "ELBO": ok[r.ELBO],
            "ELBO SE": ok[r.se(r.ELBO)],
            "KL": ok[r.KL],
            "KL SE": ok[r.se(r.KL)],
            "approximation gap": ok[r.APPROXIMATION],
            "approximation SE": ok[r.se(r.APPROXIMATION)],
            "amortization gap": ok[r.AMORTIZATION],
            "amortization SE": ok[r.se(r.AMORTIZATION)],
            "k-hat median": ok[r.KHAT_MEDIAN],
            "k-hat above threshold": ok[r.KHAT_ABOVE],
            "AIS unreliable images": ok[r.AIS_UNRELIABLE],
            "q* converged": ok[r.QSTAR_CONVERGED],
        }
    )


PM = {
    "log p(x) (AIS)": "log p SE",
    "IWAE-K": "IWAE SE",
    "ELBO": "ELBO SE",
    "KL": "KL SE",
    "approximation gap": "approximation SE",
    "amortization gap": "amortization SE",
}


@dataclass(frozen=True)
class VAE:
    """The VAE study of this results folder (section title ``TITLE``)."""

    title: str = TITLE
    without_cells: bool = True  # its headline reads the VAE study's tables alone

    def build(self, context: Context) -> list[Block]:
        tables = _tables(context)
        if "backends" not in tables:
            return []
        backends = tables["backends"]
        ok = backends[backends[r.STATUS] == r.OK]
        blocks: list[Block] = [
            Text(
                "The digits VAE trained with each backend from the same initial weights and minibatch "
                f"order, evaluated on {int(ok[r.N_IMAGES].max()) if not ok.empty else 0} test images. "
                "log p(x) by AIS per image; SEs of averages are the Monte Carlo error for these images, "
                "sqrt(Σ SE_i²)/n. KL = log p − ELBO[encoder] = approximation gap (log p − ELBO[q*], q* the "
                "best diagonal Gaussian per image) + amortization gap (ELBO[q*] − ELBO[encoder]); Cremer, "
                "Li and Duvenaud (2018)."
            )
        ]
        failed = backends[backends[r.STATUS] != r.OK]
        for row in failed.itertuples(index=False):
            first = str(getattr(row, r.ERROR)).splitlines()[0] if getattr(row, r.ERROR) else ""
            blocks.append(Text(f"Backend {getattr(row, r.BACKEND)} failed: {first}", note=True))
        if ok.empty:
            return blocks
        k = int(ok[r.IWAE_K].iloc[0])
        blocks += [
            Table(
                backend_table(backends),
                caption=f"Per backend, averages over the test images (IWAE with K = {k} encoder draws; "
                "k-hat: PSIS of the encoder's q per image, the fraction above the threshold for K draws).",
                formats={"k-hat above threshold": "{:.0%}", "q* converged": "{:.0%}"},
                pm=PM,
            ),
            Image(
                context.draw("vae-gaps", draw_gaps, ok),
                "The inference gaps per backend: the approximation gap (the diagonal Gaussian family) "
                "and the amortization gap (the encoder) add up to the KL.",
                alt="Stacked horizontal bars per backend: approximation gap and amortization gap.",
            ),
        ]
        blocks += self._training(context, tables)
        blocks += self._bdmc(tables)
        blocks += self._agreement(tables)
        blocks += self._procedures(context, tables)
        return blocks

    def _training(self, context: Context, tables: dict[str, pd.DataFrame]) -> list[Block]:
        checkpoints, intervals = tables.get("checkpoints"), tables.get("intervals")
        if checkpoints is None or checkpoints.empty or intervals is None or intervals.empty:
            return []
        whole = intervals[intervals[r.SPAN] == r.WHOLE]
        shown = intervals.rename(
            columns={
                r.BACKEND: "backend", r.SPAN: "span", r.STEP_FROM: "from step", r.STEP_TO: "to step",
                r.ELBO_GAIN: "ELBO gain", r.se(r.ELBO_GAIN): "ELBO gain SE", r.LOG_P_GAIN: "Δlog p",
                r.se(r.LOG_P_GAIN): "Δlog p SE", r.KL_FALL: "−ΔKL", r.se(r.KL_FALL): "−ΔKL SE",
            }
        )  # fmt: skip
        return [
            Heading("The ELBO's rise, split: Δlog p(x) + (−ΔKL)"),
            Text(
                f"At each training checkpoint, on the first {int(checkpoints[r.N_IMAGES].iloc[0])} test "
                "images: log p(x) by AIS, the ELBO and their difference, the KL. Each interval's ELBO gain "
                "is Δlog p + (−ΔKL) exactly; SEs add in quadrature (independent estimates per checkpoint)."
            ),
            Image(
                context.draw("vae-training", draw_training, checkpoints, whole),
                "Top: log p(x) and the ELBO during training, and the KL between them. Bottom: the ELBO's "
                "gain over the whole of training, split into Δlog p (solid) and −ΔKL (hatched); the "
                "split per interval is in the table below.",
                alt="Line plots of log p, ELBO and KL against training step; one bar per backend of the "
                "ELBO's gain split into the rise of log p and the fall of the KL.",
            ),
            Table(
                shown,
                caption="The split of the ELBO's gain per interval, and over the whole of training.",
                pm={"ELBO gain": "ELBO gain SE", "Δlog p": "Δlog p SE", "−ΔKL": "−ΔKL SE"},
                details=True,
            ),
        ]

    def _bdmc(self, tables: dict[str, pd.DataFrame]) -> list[Block]:
        bdmc = tables.get("bdmc")
        if bdmc is None or bdmc.empty:
            return []
        shown = bdmc.rename(
            columns={
                r.BACKEND: "backend", r.TEMPERATURES: "temperatures", r.N_IMAGES: "images",
                r.LOWER: "lower (forward AIS)", r.se(r.LOWER): "lower SE", r.UPPER: "upper (reverse AIS)",
                r.se(r.UPPER): "upper SE", r.GAP: "gap", r.se(r.GAP): "gap SE",
            }
        )[["backend", "temperatures", "images", "lower (forward AIS)", "lower SE", "upper (reverse AIS)",
           "upper SE", "gap", "gap SE"]]  # fmt: skip
        return [
            Heading("BDMC: how far AIS is from log p(x)"),
            Text(
                "On images simulated from each trained decoder, whose simulating latents are exact "
                "posterior draws: forward AIS bounds log p from below and reverse AIS from above (Grosse "
                "et al. 2015; Wu et al. 2017); the gap bounds the AIS error at that schedule length. Upper "
                "bound and gap take the between-image SE (the bound holds on average over the exact draws)."
            ),
            Table(
                shown,
                pm={"lower (forward AIS)": "lower SE", "upper (reverse AIS)": "upper SE", "gap": "gap SE"},
            ),
        ]

    def _agreement(self, tables: dict[str, pd.DataFrame]) -> list[Block]:
        agreement = tables.get("agreement")
        if agreement is None or agreement.empty:
            return []
        flagged = agreement[agreement[r.FLAGGED]]
        verdict = (
            "No difference beyond 4 SE."
            if flagged.empty
            else f"{len(flagged)} differences beyond 4 SE (flagged): there the trained models differ by more "
            "than the evaluation's noise. The SEs do not contain the training's randomness: each backend "
            "draws its own reparametrization noise, so from the same initial weights and minibatches the "
            "trained weights agree in distribution, not draw for draw (next: whether the backends differ "
            "as training procedures)."
        )
        return [
            Heading("Backend agreement"),
            Text(f"Pairwise differences of the backends' averages, z = difference / SE. {verdict}"),
            Table(agreement, formats={r.Z: "{:+.1f}"}, pm={r.DIFFERENCE: "se"}),
        ]

    def _procedures(self, context: Context, tables: dict[str, pd.DataFrame]) -> list[Block]:
        runs, procedures = tables.get("runs"), tables.get("procedures")
        if runs is None or procedures is None or procedures.empty:
            return []
        ok = runs[runs[r.STATUS] == r.OK]
        verdict = _procedures_verdict(procedures)
        blocks: list[Block] = [
            Heading("The backends as training procedures"),
            Text(
                "Each backend trained several times from the same initial weights and minibatches, the "
                "runs differing only in the seed of their reparametrization noise, and each run's encoder "
                "was evaluated on the same test images (ELBO and IWAE-K). The standard deviation over "
                "runs (sd a, sd b) is mostly the training's own noise, which the SEs above leave out; it "
                "also holds each run's evaluation noise, the bars in the figure. Welch's t-test compares "
                "the backends' run means (p from Student's t: with a few runs the sd is itself "
                f"uncertain), flagged where p is below that of |z| > 4. {verdict}"
            ),
        ]
        failed = runs[runs[r.STATUS] != r.OK]
        for row in failed.itertuples(index=False):
            first = str(getattr(row, r.ERROR)).splitlines()[0] if getattr(row, r.ERROR) else ""
            blocks.append(
                Text(
                    f"Training run {getattr(row, r.RUN)} of {getattr(row, r.BACKEND)} failed: {first}",
                    note=True,
                )
            )
        shown = procedures.rename(
            columns={
                r.QUANTITY: "quantity", r.BACKEND_A: "backend a", r.BACKEND_B: "backend b",
                r.RUNS_A: "runs a", r.RUNS_B: "runs b", r.MEAN_A: "mean a", r.SD_A: "sd a",
                r.MEAN_B: "mean b", r.SD_B: "sd b", r.DIFFERENCE: "difference", "se": "SE",
                r.T: "Welch t", r.DF: "df", r.P: "p", r.FLAGGED: "flagged", r.DETECTABLE: "smallest flagged",
            }
        )  # fmt: skip
        return [
            *blocks,
            Image(
                context.draw("vae-runs", draw_runs, ok),
                "Every training run's test ELBO and IWAE-K per backend: the spread between runs is the "
                "training's noise; the bars, each run's evaluation noise.",
                alt="Dot plots per backend of the test ELBO and IWAE of each training run.",
            ),
            Table(
                shown, formats={"Welch t": "{:+.2f}", "df": "{:.1f}", "p": "{:.2g}"}, pm={"difference": "SE"}
            ),
        ]

    def summary(self, context: Context) -> str:
        """The study in a phrase: the model, its training, the backends and the test images."""
        tables = _tables(context)
        backends = tables.get("backends")
        if backends is None or backends.empty:
            return ""
        ok = backends[backends[r.STATUS] == r.OK]
        failed = list(backends.loc[backends[r.STATUS] != r.OK, r.BACKEND])
        losses, runs = tables.get("losses"), tables.get("runs")
        latent = backends[r.LATENT_DIM].dropna()
        parts = ["the VAE study (`ppl-suite vae`): the digits VAE"]
        if not latent.empty:
            parts.append(f" (latent dimension {int(latent.iloc[0])})")
        parts.append(" trained")
        if losses is not None and not losses.empty:
            parts.append(f" for {int(losses.groupby(r.BACKEND).size().max()):,} steps")
        if not ok.empty:
            parts.append(f" by {words.listing(list(ok[r.BACKEND]))}")
            if runs is not None and not runs.empty:
                most = int(runs.groupby(r.BACKEND).size().max())
                parts.append(f" ({words.count(most, 'training run')} each)")
            parts.append(f", evaluated on {int(ok[r.N_IMAGES].max())} test images")
        if failed:
            parts.append(f"{';' if not ok.empty else ':'} {words.listing(failed)} failed")
        return "".join(parts)

    def headline(self, context: Context) -> list[Block]:
        """Per backend, a row of a small table: the trained model's log p(x) = ELBO + KL, the ELBO's gain
        over training split the same way, and the KL's path over the checkpoints; then what the KL did."""
        tables = _tables(context)
        backends, checkpoints = tables.get("backends"), tables.get("checkpoints")
        if backends is None or backends.empty:
            return []
        ok = backends[backends[r.STATUS] == r.OK]
        if ok.empty:
            return []
        intervals = tables.get("intervals")
        whole = intervals[intervals[r.SPAN] == r.WHOLE] if intervals is not None else pd.DataFrame()
        rows, ses, paths = [], [], {}
        for _, final in ok.iterrows():
            backend = final[r.BACKEND]
            row = {"backend": backend, "log p(x) = ELBO + KL": final_split(final)}
            ses += [final[r.se(r.LOG_P)], final[r.se(r.ELBO)], final[r.se(r.KL)]]
            gain = whole[whole[r.BACKEND] == backend] if not whole.empty else whole
            if not gain.empty:
                gain = gain.iloc[0]
                row["steps"] = f"{int(gain[r.STEP_FROM])} → {int(gain[r.STEP_TO])}"
                row["the ELBO's gain = Δlog p + (−ΔKL)"] = gain_split(gain)
                ses += [gain[r.se(r.ELBO_GAIN)], gain[r.se(r.LOG_P_GAIN)], gain[r.se(r.KL_FALL)]]
            points = checkpoints[checkpoints[r.BACKEND] == backend] if checkpoints is not None else None
            if points is not None and not points.empty:
                paths[backend] = KLPath.of(points)
                row["KL over training"] = paths[backend].text
                ses += list(paths[backend].ses)
            rows.append(row)
        n_test = int(ok[r.N_IMAGES].max())
        caption = (
            f"Nats per image, to 0.01 (the largest SE of these numbers: {max(ses):.2g}; each is in "
            f'"{TITLE}" with its SE). log p(x) = ELBO + KL: the trained model on {n_test} test images '
            "(log p by AIS, KL = log p − ELBO)."
        )
        if checkpoints is not None and not checkpoints.empty:
            caption += (
                " The ELBO's gain and the KL's path (start → lowest → end): at the training "
                f"checkpoints, on the first {int(checkpoints[r.N_IMAGES].iloc[0])} test images."
            )
        blocks: list[Block] = [
            Text("The VAE (θ learned too), per backend:"),
            Table(pd.DataFrame(rows), caption=caption),
        ]
        said = kl_sentences(paths, whole)
        return blocks + ([Text(said)] if said else [])

    def cost(self, context: Context) -> list[Block]:
        """The study's seconds per backend by part, as stored (``cost_table``)."""
        tables = _tables(context)
        backends = tables.get("backends")
        if backends is None or backends.empty or (backends[r.STATUS] == r.OK).sum() == 0:
            return []
        table = cost_table(tables)
        others = "other runs: training" in table
        text = (
            "Wall seconds per backend, as the study stored them. Training: the first run's loop, its "
            "set-up apart (JAX's compilation, Pyro's first step)"
            + (
                "; the other training runs' loops, summed, and their encoders' evaluation (IWAE-K)"
                if others
                else ""
            )
            + ". Evaluation of the first run: AIS per test image (the tuning of its schedule apart), IWAE-K "
            "with the encoder's ELBO, q* per image with ELBO[q*], log p, ELBO and KL at the training "
            "checkpoints, and BDMC at every schedule length."
        )
        entry = context.manifest.get(r.MANIFEST_VAE, {})
        if entry.get(schema.MANIFEST_STARTED) and entry.get(schema.MANIFEST_FINISHED):
            text += (
                f" The last `ppl-suite vae` on this folder ran from {entry[schema.MANIFEST_STARTED]} to "
                f"{entry[schema.MANIFEST_FINISHED]}; what it found kept from an earlier run it read, not "
                "redid: the table gives the seconds of the run that did each part."
            )
        blocks: list[Block] = [Heading("The VAE study", 3), Text(text)]
        formats = {column: "{:,.1f}" for column in table.columns if column not in ("backend", "other runs")}
        caption = "Seconds per backend and part."
        if table.drop(columns="backend").isna().to_numpy().any():
            caption += " —: not stored (the study that wrote this folder did not keep that time)."
        return [*blocks, Table(table, caption=caption, formats=formats)]


def _procedures_verdict(procedures: pd.DataFrame) -> str:
    """What the Welch tests between the backends' training runs say, in a sentence."""
    tested = procedures[procedures[r.P].notna()]
    flagged = tested[tested[r.FLAGGED]]
    if not flagged.empty:
        return (
            f"{len(flagged)} of {len(tested)} comparisons flagged: there the backends differ as "
            "training procedures, beyond the runs' spread."
        )
    if not tested.empty:
        return (
            "None flagged: no difference between the backends as large as the table's last column "
            "(the smallest difference this many runs can flag); a difference between their first "
            "runs (Backend agreement, above) is within what separate training runs give."
        )
    return "No comparison could be made: the runs did not spread."


def _number(value: float) -> str:
    """A number to 0.01, with a true minus sign."""
    return f"{value:.2f}".replace("-", "−")


def final_split(row: pd.Series) -> str:
    """``log p = ELBO + KL`` of a ``backends`` row, e.g. ``−19.02 = −20.03 + 1.01``."""
    return f"{_number(row[r.LOG_P])} = {_number(row[r.ELBO])} + {_number(row[r.KL])}"


def gain_split(row: pd.Series) -> str:
    """``ELBO gain = Δlog p + (−ΔKL)`` of an ``intervals`` row, e.g. ``25.00 = 25.14 + (−0.14)`` (a
    negative term in brackets)."""
    fall = _number(row[r.KL_FALL])
    return (
        f"{_number(row[r.ELBO_GAIN])} = {_number(row[r.LOG_P_GAIN])} + {f'({fall})' if '−' in fall else fall}"
    )


CHANGE_SE = 4  # a change of the KL or log p between two checkpoints is said where beyond this many SEs
# (the suite's 4 SE: the sentence compares a chosen checkpoint, the lowest, with others, so a 2-SE
# rule would say a false "fell, then rose" far more often than 5% of the time)


@dataclass(frozen=True)
class KLPath:
    """The KL at the first checkpoint, at its lowest one and at the last (stored values and SEs), and
    whether it first fell and then rose while log p(x) rose: each change beyond ``CHANGE_SE`` SEs of
    the two independent checkpoint estimates."""

    text: str
    ses: tuple[float, ...]
    fell_then_rose: bool

    @classmethod
    def of(cls, points: pd.DataFrame) -> KLPath:
        points = points.sort_values(r.STEP).reset_index(drop=True)
        first, last, low = points.iloc[0], points.iloc[-1], points.loc[points[r.KL].idxmin()]
        shown = [first, last] if low.name in (0, len(points) - 1) else [first, low, last]

        def beyond(a: pd.Series, b: pd.Series, column: str) -> bool:  # a's value above b's
            return a[column] - b[column] > CHANGE_SE * float(np.hypot(a[r.se(column)], b[r.se(column)]))

        fell_then_rose = (
            len(shown) == 3
            and beyond(first, low, r.KL)
            and beyond(last, low, r.KL)
            and beyond(last, low, r.LOG_P)
        )
        return cls(
            " → ".join(f"{_number(p[r.KL])} (step {int(p[r.STEP])})" for p in shown),
            tuple(float(p[r.se(r.KL)]) for p in shown),
            fell_then_rose,
        )


def kl_sentences(paths: dict[str, KLPath], whole: pd.DataFrame) -> str:
    """What the KL did over training, per group of backends: first fell then rose (while log p rose);
    ended higher, or lower, than it started (the whole span's −ΔKL beyond ``CHANGE_SE`` SEs of 0)."""
    turned = [backend for backend, path in paths.items() if path.fell_then_rose]
    said = []
    if turned:
        said.append(
            f"In {words.listing(turned)} the KL first fell, then rose again while log p_θ(x) kept rising: "
            "as the decoder improved, the ELBO gained through log p_θ(x) at the expense of the KL, so "
            "maximizing the ELBO did not minimize KL(q(z|x) || p_θ(z|x))."
        )
    if whole.empty:
        return " ".join(said)
    rose = whole[whole[r.KL_FALL] + CHANGE_SE * whole[r.se(r.KL_FALL)] < 0][r.BACKEND].tolist()
    if rose:
        said.append(
            f"In {words.listing(rose)} the KL ended higher than it started (−ΔKL below 0 by more than "
            f"{CHANGE_SE} SE): over the whole of training the ELBO rose through log p_θ(x) alone."
        )
    fell = whole[whole[r.KL_FALL] - CHANGE_SE * whole[r.se(r.KL_FALL)] > 0][r.BACKEND]
    fell = [backend for backend in fell if backend not in turned]
    if fell:
        said.append(
            f"In {words.listing(fell)} the KL ended lower than it started (−ΔKL above 0 by more than "
            f"{CHANGE_SE} SE): the ELBO rose through both terms, the model (Δlog p) and q's closeness to "
            "the posterior (−ΔKL)."
        )
    return " ".join(said)


def _total(seconds: pd.Series) -> float:
    """The sum of stored seconds; NaN where one of them is not stored."""
    return float(seconds.sum()) if seconds.notna().all() else np.nan


def cost_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Seconds per backend (ok backends) and part, from the stored tables: the first run's training and
    set-up, the other runs' training and IWAE-K (summed), and the first run's evaluation by part."""
    backends = tables["backends"]
    ok = backends[backends[r.STATUS] == r.OK].reset_index(drop=True)

    def stored(column: str) -> pd.Series:
        return ok[column] if column in ok else pd.Series(np.nan, index=ok.index)

    frame = pd.DataFrame({"backend": ok[r.BACKEND], "training": stored(r.TRAINING_SECONDS)})
    frame["set-up"] = stored(r.COMPILE_SECONDS)
    runs = tables.get("runs")
    if runs is not None and not runs.empty and (runs[r.RUN] > 0).any():
        others = runs[(runs[r.RUN] > 0) & (runs[r.STATUS] == r.OK)]
        by_backend = others.groupby(r.BACKEND)
        frame["other runs"] = ok[r.BACKEND].map(by_backend.size()).fillna(0).astype(int)
        for part, column in (("training", r.TRAINING_SECONDS), ("IWAE-K", r.IWAE_SECONDS)):
            total = by_backend[column].agg(_total) if column in others else pd.Series(dtype=float)
            frame[f"other runs: {part}"] = ok[r.BACKEND].map(total)
    frame["AIS tuning"] = stored(r.AIS_TUNING_SECONDS)
    frame["AIS"] = stored(r.AIS_SECONDS)
    frame["IWAE-K"] = stored(r.IWAE_SECONDS)
    frame["q*"] = stored(r.FIT_SECONDS)
    frame["checkpoints"] = stored(r.CHECKPOINT_SECONDS)
    bdmc = tables.get("bdmc")
    if bdmc is not None and not bdmc.empty:
        frame["BDMC"] = ok[r.BACKEND].map(bdmc.groupby(r.BACKEND)["seconds"].sum())
    return frame


register(VAE())
