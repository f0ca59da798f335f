"""The VQ-VAE: log p(x) = ELBO + KL(q || p(z|x)) with every term exact, over training, for the three
ways of training it. Reads the tables the VQ-VAE study stored (``ppl_suite.vqvae.results``) and draws
them; every number shown is stored, none is computed here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite.report import drawing, words
from ppl_suite.report.document import Block, Context, Heading, Image, Table, Text, register
from ppl_suite.vqvae import results as r

TITLE = "The VQ-VAE: every term of log p(x) = ELBO + KL exact"
OBJECTIVE_NAMES = {
    "enumerated": "(a) the ELBO summed over q",
    "score_function": "(b) score-function ELBO",
    "vq": "(c) the VQ-VAE loss",
}


def _tables(context: Context) -> dict[str, pd.DataFrame]:
    return context.store.vae_tables()


@drawing.styled
def draw_curves(checkpoints: pd.DataFrame, path: Path) -> Path:
    """Per objective (columns): log p(x) and the ELBO (top) and the KL (bottom) over training, exact
    averages over the test images, one line style per backend."""
    from matplotlib.figure import Figure

    objectives = list(dict.fromkeys(checkpoints[r.OBJECTIVE]))
    figure = Figure(figsize=(drawing.WIDTH, 5.2), layout="constrained")
    axes = figure.subplots(2, len(objectives), sharex=True, squeeze=False)
    for column, objective in enumerate(objectives):
        top, bottom = axes[0][column], axes[1][column]
        part = checkpoints[checkpoints[r.OBJECTIVE] == objective]
        for backend, rows in part.groupby(r.BACKEND, sort=False):
            style = drawing.backend_style(backend)
            step = rows[r.STEP].to_numpy() + 1
            top.plot(step, rows[r.LOG_EVIDENCE], style, color="black", label=f"log p(x), {backend}")
            top.plot(
                step, rows[r.ELBO], style, color=drawing.backend_color(backend), label=f"ELBO, {backend}"
            )
            bottom.plot(step, rows[r.KL], style, color=drawing.backend_color(backend), label=backend)
            bottom.plot(step, rows[r.KL_NEAREST], style, color="grey", linewidth=0.8)
        top.set_title(OBJECTIVE_NAMES.get(objective, objective), fontsize=9)
        bottom.set_xscale("log")
        bottom.set_xlabel("training step + 1")
    axes[0][0].set_ylabel("nats per test image")
    axes[1][0].set_ylabel("KL(q || p(z|x)), nats")
    axes[1][-1].legend(fontsize=7, frameon=False)
    figure.suptitle(
        "Exact log p(x) (black) and ELBO (colour) above; KL of q (colour), of the nearest code (grey) below",
        fontsize=10,
    )
    return drawing.save(figure, path)


@drawing.styled
def draw_images(exact: pd.DataFrame, path: Path) -> Path:
    """Per objective: each test image's log p(x) (black) and ELBO (colour) at the end of training, the
    images in order of log p(x); the gap between them is the image's KL."""
    from matplotlib.figure import Figure

    objectives = list(dict.fromkeys(exact[r.OBJECTIVE]))
    figure = Figure(figsize=(drawing.WIDTH, 2.8), layout="constrained")
    axes = figure.subplots(1, len(objectives), sharey=True, squeeze=False)[0]
    for axis, objective in zip(axes, objectives, strict=True):
        part = exact[exact[r.OBJECTIVE] == objective].sort_values(r.LOG_EVIDENCE)
        rank = np.arange(len(part))
        axis.plot(rank, part[r.ELBO], ".", markersize=2, color="#1f6fb4", label="ELBO of q")
        axis.plot(
            rank, part[r.ELBO_NEAREST], ".", markersize=2, color="#e0a100", label="ELBO of the nearest code"
        )
        axis.plot(rank, part[r.LOG_EVIDENCE], "-", color="black", label="log p(x)")
        axis.set_title(OBJECTIVE_NAMES.get(objective, objective), fontsize=9)
        axis.set_xlabel("test images, by log p(x)")
    axes[0].set_ylabel("nats")
    axes[-1].legend(fontsize=7, frameon=False, markerscale=4)
    figure.suptitle("Per image at the end of training: log p(x) = ELBO + KL (the gap)", fontsize=10)
    return drawing.save(figure, path)


def _final(runs: pd.DataFrame, objective: str) -> pd.Series | None:
    rows = runs[(runs[r.OBJECTIVE] == objective) & (runs[r.STATUS] == r.OK)]
    return None if rows.empty else rows.iloc[0]


def _whole(split: pd.DataFrame, objective: str, backend: str) -> pd.Series | None:
    rows = split[
        (split[r.OBJECTIVE] == objective)
        & (split[r.BACKEND] == backend)
        & (split[r.SPAN] == r.WHOLE)
        & (split[r.IMAGES] == r.TEST)
    ]
    return None if rows.empty else rows.iloc[0]


@dataclass(frozen=True)
class VQVAE:
    """The VQ-VAE study of this results folder (section title ``TITLE``)."""

    title: str = TITLE
    without_cells: bool = True

    def build(self, context: Context) -> list[Block]:
        tables = _tables(context)
        runs = tables.get("vqvae_runs")
        if runs is None or runs.empty:
            return []  # nothing to say: the section is left out
        ok = runs[runs[r.STATUS] == r.OK]
        blocks: list[Block] = [
            Text(
                "The digits VQ-VAE (models/vqvae_digits): L positions, each one of K codes under a uniform "
                "prior, a Bernoulli decoder of the chosen code vectors, and an encoder q(z_l = k | x) ∝ "
                "exp(−|u_l(x) − e_k|² / T) (van den Oord et al. 2017, kept stochastic). With K^L codes "
                "log p(x), the posterior, the ELBO and KL(q || p(z|x)) are finite sums: every number here "
                "is exact, with no standard error. Each backend trains it three ways from the same initial "
                "weights and minibatches: (a) the ELBO summed over q (TraceEnum_ELBO), (b) the ELBO with "
                "the score-function gradient (Pyro's Trace_ELBO, NumPyro's TraceGraph_ELBO), (c) the "
                "VQ-VAE loss at the nearest codes, whose KL(q || p(z)) = L log K is a dropped constant."
            )
        ]
        for row in runs[runs[r.STATUS] != r.OK].itertuples(index=False):
            first = str(getattr(row, r.ERROR)).splitlines()[0] if getattr(row, r.ERROR) else ""
            blocks.append(Text(f"{row.backend} {row.objective} failed: {first}", note=True))
        shown = ok.rename(
            columns={
                r.BACKEND: "backend", r.OBJECTIVE: "objective", r.LOG_EVIDENCE: "log p(x)", r.ELBO: "ELBO",
                r.KL: "KL(q‖p(z|x))", r.ELBO_NEAREST: "ELBO at z*", r.KL_NEAREST: "−log p(z*|x)",
            }
        )[["backend", "objective", "log p(x)", "ELBO", "KL(q‖p(z|x))", "ELBO at z*",
           "−log p(z*|x)"]]  # fmt: skip
        blocks.append(
            Table(
                shown,
                caption="At the end of training, averages over the test images (exact). z*: the nearest "
                "codes, the deterministic encoder. Training seconds: the Cost section.",
                formats={c: "{:.3f}" for c in shown.columns[2:]},
            )
        )
        blocks += self._figures(context, tables)
        blocks += self._split(tables)
        blocks += self._gradients(tables)
        blocks += self._estimators(tables)
        return blocks

    @staticmethod
    def _figures(context: Context, tables: dict[str, pd.DataFrame]) -> list[Block]:
        """The curves over training and the per-image identity at the end of training."""
        blocks: list[Block] = []
        checkpoints = tables.get("vqvae_checkpoints")
        if checkpoints is not None and not checkpoints.empty:
            test = checkpoints[checkpoints[r.IMAGES] == r.TEST]
            blocks.append(
                Image(
                    context.draw("vqvae-curves", draw_curves, test),
                    "Over training, per objective: the exact log p(x) and ELBO, and the KL between them; "
                    "grey: the KL of the nearest code, −log p(z*|x).",
                    alt="Line plots per objective of log p, ELBO and KL against training step, one line "
                    "per backend.",
                )
            )
        exact = tables.get("exact")
        if exact is not None and not exact.empty:
            last = exact[exact[r.STEP] == exact[r.STEP].max()]
            first_backend = last[r.BACKEND].iloc[0]
            blocks.append(
                Image(
                    context.draw("vqvae-images", draw_images, last[last[r.BACKEND] == first_backend]),
                    f"Per test image at the end of training ({first_backend}): log p(x) = ELBO + KL; the "
                    "gap between the line and the points is each image's KL.",
                    alt="Per objective, points of each image's ELBO under its log p(x) line.",
                )
            )
        return blocks

    def _split(self, tables: dict[str, pd.DataFrame]) -> list[Block]:
        split = tables.get("vqvae_split")
        if split is None or split.empty:
            return []
        whole = split[split[r.SPAN] == r.WHOLE].rename(
            columns={
                r.BACKEND: "backend", r.OBJECTIVE: "objective", r.IMAGES: "images",
                r.STEP_FROM: "from", r.STEP_TO: "to", r.ELBO_GAIN: "ELBO gain",
                r.LOG_EVIDENCE_GAIN: "Δlog p(x)", r.KL_FALL: "−ΔKL", r.RESIDUAL: "residual",
            }
        )[["backend", "objective", "images", "from", "to", "ELBO gain", "Δlog p(x)", "−ΔKL",
           "residual"]]  # fmt: skip
        return [
            Heading("The ELBO's gain, split exactly: Δlog p(x) + (−ΔKL)"),
            Text(
                "Over the whole of training, averages over the test and the training images: each term "
                "exact, their residual float64 rounding. Per interval between checkpoints: the "
                "vqvae_split table."
            ),
            Table(
                whole,
                formats={c: "{:.4f}" for c in ("ELBO gain", "Δlog p(x)", "−ΔKL")} | {"residual": "{:.1e}"},
            ),
        ]

    def _gradients(self, tables: dict[str, pd.DataFrame]) -> list[Block]:
        gradients = tables.get("vqvae_gradients")
        if gradients is None or gradients.empty:
            return []
        everything = gradients[gradients[r.WEIGHT] == r.ALL].rename(
            columns={
                r.BACKEND: "backend",
                r.POINT: "weights",
                r.STEP: "step",
                r.DRAWS: "draws",
                r.RELATIVE_VARIANCE: "variance / |g|²",
                r.Z_ALONG: "bias along g (SE)",
            }
        )[["backend", "weights", "step", "draws", "variance / |g|²", "bias along g (SE)"]]
        return [
            Heading("The score-function gradient against the exact one"),
            Text(
                "On the first minibatch, each backend's score-function gradient (one draw of z per image) "
                "against its enumerated gradient g: the total variance of one draw relative to |g|² (about "
                "the draws needed for a relative error of 1), and the draws' mean minus g along g, in SEs "
                "(|value| > 4: biased). Per weight array: the vqvae_gradients table."
            ),
            Table(everything, formats={"variance / |g|²": "{:.4g}", "bias along g (SE)": "{:.2f}"}),
        ]

    def _estimators(self, tables: dict[str, pd.DataFrame]) -> list[Block]:
        calibration = tables.get("vqvae_calibration")
        if calibration is None or calibration.empty:
            return []
        shown = calibration.rename(
            columns={
                r.BACKEND: "backend", r.OBJECTIVE: "objective", r.ESTIMATOR: "estimator", r.K: "K",
                r.N_IMAGES: "k-hat passes", r.Z_MEAN: "mean z", r.Z_SD: "sd z", r.ABOVE_4: "|z| > 4",
                r.UNRELIABLE: "k-hat fails",
            }
        )  # fmt: skip
        return [
            Heading("Estimators of log p(x) against the exact value"),
            Text(
                "Per test image at the trained weights, with the encoder's q as proposal: importance "
                "sampling of log p(x) (delta-method SE) and the IWAE-K bound (SE over blocks of K), "
                "z = (estimate − exact) / SE, over the images whose k-hat passes the suite's rule (the "
                "PSIS k-hat of as many independent draws below 1/2 by two of its sds; Vehtari et al. "
                "2024). Importance sampling's SEs are labelled unreliable here whatever their k-hat: "
                "the rule does not calibrate them on this model (measured at the initial weights and "
                "after training with the enumerated and vq objectives: z sd 1.3 to 2.4 over the images "
                "it passes), because codes q gives too little mass to be drawn carry weights no k-hat of "
                "the draws sees; its row is that measurement, not an SE to read. IWAE-K is a bound "
                "(Burda et al. 2016), its z below 0 by its gap in SEs and never above 4. AIS is not "
                "run: the suite's AIS moves a continuous latent by HMC, and this latent is discrete; with "
                "every code enumerated, log p(x) needs no annealing."
            ),
            Table(shown, formats={"mean z": "{:.2f}", "sd z": "{:.2f}"}, details=True),
        ]

    def summary(self, context: Context) -> str:
        """The study in a phrase: its codes, its training, the backends and objectives, the test images."""
        runs = _tables(context).get("vqvae_runs")
        if runs is None or runs.empty:
            return ""
        ok = runs[runs[r.STATUS] == r.OK]
        failed = [f"{row.backend} {row.objective}" for row in runs[runs[r.STATUS] != r.OK].itertuples()]
        phrase = "the VQ-VAE study (`ppl-suite vae --model vqvae_digits`)"
        if not ok.empty:
            first = ok.iloc[0]
            phrase += (
                f": K = {int(first[r.CODES])} codes at L = {int(first[r.POSITIONS])} positions, trained by "
                f"{words.listing(list(dict.fromkeys(ok[r.BACKEND])))} with "
                f"{words.count(ok[r.OBJECTIVE].nunique(), 'objective')}, evaluated exactly on "
                f"{int(ok[r.N_IMAGES].max())} test images"
            )
        if failed:
            phrase += f"; {words.listing(failed)} failed"
        return phrase

    def cost(self, context: Context) -> list[Block]:
        """Training seconds per backend and objective, as stored (its set-up apart)."""
        runs = _tables(context).get("vqvae_runs")
        if runs is None or runs.empty:
            return []
        ok = runs[runs[r.STATUS] == r.OK]
        if ok.empty:
            return []
        seconds = ok.pivot(index=r.BACKEND, columns=r.OBJECTIVE, values=r.TRAINING_SECONDS)
        setup = ok.pivot(index=r.BACKEND, columns=r.OBJECTIVE, values=r.COMPILE_SECONDS)
        shown = (
            pd.concat({"training s": seconds, "set-up s": setup}, axis=1).rename_axis("backend").reset_index()
        )
        shown.columns = [
            c if isinstance(c, str) else (c[0] if not c[1] else f"{c[0]}: {c[1]}") for c in shown.columns
        ]
        return [
            Heading("The VQ-VAE study"),
            Text(
                "Wall seconds of each training run, as the study stored them: the training loop, and apart "
                "from it its set-up (JAX's compilation, Pyro's first step)."
            ),
            Table(shown, formats={c: "{:.1f}" for c in shown.columns[1:]}),
        ]

    def headline(self, context: Context) -> list[Block]:
        """The question answered for the VQ-VAE in this run's exact numbers, a short sentence each."""
        tables = _tables(context)
        runs, split = tables.get("vqvae_runs"), tables.get("vqvae_split")
        checkpoints = tables.get("vqvae_checkpoints")
        if runs is None or runs.empty or split is None:
            return []
        sentences = ["The VQ-VAE (every term exact, no standard error):"]
        enumerated = _final(runs, "enumerated")
        if (
            enumerated is not None
            and (whole := _whole(split, "enumerated", enumerated[r.BACKEND])) is not None
        ):
            sentences.append(
                f"(a) trained on the exact ELBO ({enumerated[r.BACKEND]}), the test ELBO rose "
                f"{whole[r.ELBO_GAIN]:.3f} nats per image = Δlog p_θ(x) {whole[r.LOG_EVIDENCE_GAIN]:.3f} "
                f"+ (−ΔKL) {whole[r.KL_FALL]:.3f}."
            )
            path = _kl_path(checkpoints, "enumerated", enumerated[r.BACKEND])
            if path:
                sentences.append(f"Its KL(q || p_θ(z|x)) went {path}.")
            sentences.append(
                f"At the end: log p_θ(x) {enumerated[r.LOG_EVIDENCE]:.3f} = ELBO {enumerated[r.ELBO]:.3f} + "
                f"KL {enumerated[r.KL]:.3f}. At any fixed θ, log p_θ(x) is fixed: whatever q does moves the "
                "ELBO and −KL together."
            )
        vq = _final(runs, "vq")
        if vq is not None:
            constant = vq[r.POSITIONS] * math.log(vq[r.CODES])
            sentences.append(
                f"(c) The VQ-VAE loss drops the constant KL(one-hot q || p(z)) = L log K = "
                f"{int(vq[r.POSITIONS])} log {int(vq[r.CODES])} = {constant:.3f} nats."
            )
            sentences.append(
                f"Its deterministic encoder's KL to the true posterior, −log p_θ(z*|x), ended at "
                f"{vq[r.KL_NEAREST]:.3f} nats per image (log p {vq[r.LOG_EVIDENCE]:.3f} = ELBO at z* "
                f"{vq[r.ELBO_NEAREST]:.3f} + {vq[r.KL_NEAREST]:.3f})."
            )
        if len(sentences) == 1:
            return []
        return [Text(" ".join(sentences))]


def _kl_path(checkpoints: pd.DataFrame | None, objective: str, backend: str) -> str:
    """The test images' KL at the first checkpoint, its lowest and the last (``a (step s) → ...``), as
    stored; "" without checkpoints."""
    if checkpoints is None or checkpoints.empty:
        return ""
    rows = checkpoints[
        (checkpoints[r.OBJECTIVE] == objective)
        & (checkpoints[r.BACKEND] == backend)
        & (checkpoints[r.IMAGES] == r.TEST)
    ].sort_values(r.STEP)
    if rows.empty:
        return ""
    marks = [rows.iloc[0], rows.loc[rows[r.KL].idxmin()], rows.iloc[-1]]
    kept = [m for i, m in enumerate(marks) if all(m[r.STEP] != n[r.STEP] for n in marks[:i])]
    return " → ".join(f"{m[r.KL]:.3f} (step {int(m[r.STEP])})" for m in kept)


register(VQVAE())
