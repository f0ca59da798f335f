"""The VAE study's runner, settings and wiring, on a tiny stand-in for the digits VAE: a 1-D latent,
a small Bernoulli decoder and encoder in the digits network's form, and a trainer that returns fixed
weights (the real training has its own tests)."""

from __future__ import annotations

import dataclasses
import shutil
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from ppl_suite import matrix
from ppl_suite.store import PARTIAL, ResultsStore
from ppl_suite.vae import results as r
from ppl_suite.vae.agreement import FLAG_P, between_procedures
from ppl_suite.vae.latent import LatentModel
from ppl_suite.vae.settings import FitSettings, SettingsError, VAEAISSettings, VAEStudySettings, from_table
from ppl_suite.vae.study import run_study
from ppl_suite.vae.training import TrainedVAE

PIXELS, HIDDEN, DIM = 12, 4, 1
DECODER = ("dec_w1", "dec_b1", "dec_w2", "dec_b2")


def logits(theta, z):
    return jnp.tanh(z @ theta["dec_w1"] + theta["dec_b1"]) @ theta["dec_w2"] + theta["dec_b2"]


def log_likelihood(theta, z, x):
    value = logits(theta, z)
    return jnp.sum(x * value - jnp.logaddexp(0.0, value), axis=-1)


def simulate(theta, key, z):
    return (jax.random.uniform(key, (*z.shape[:-1], PIXELS)) < jax.nn.sigmoid(logits(theta, z))).astype(float)


def encode(weights, x):
    hidden = np.tanh(x @ weights["enc_w1"])
    return hidden @ weights["enc_w_loc"], np.logaddexp(0.0, hidden @ weights["enc_w_scale"])


def weights_at(scale: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "dec_w1": scale * rng.normal(size=(DIM, HIDDEN)),
        "dec_b1": rng.normal(size=HIDDEN),
        "dec_w2": scale * rng.normal(size=(HIDDEN, PIXELS)),
        "dec_b2": rng.normal(size=PIXELS),
        "enc_w1": 0.3 * rng.normal(size=(PIXELS, HIDDEN)),
        "enc_w_loc": rng.normal(size=(HIDDEN, DIM)),
        "enc_w_scale": rng.normal(size=(HIDDEN, DIM)) - 1.0,
    }


def trainer(backend: str, data, settings):
    if backend == "pyro":
        raise RuntimeError("this backend is broken on purpose")
    if settings.noise_seed == BROKEN_NOISE_SEED:
        raise RuntimeError("this training run is broken on purpose")
    checkpoints = {0: weights_at(0.5), 10: weights_at(1.5), 100: weights_at(2.5)}
    if settings.noise_seed is not None:  # another training run: its decoder lands elsewhere
        rng = np.random.default_rng(settings.noise_seed)
        checkpoints[100] = {k: v + 0.05 * rng.normal(size=v.shape) for k, v in checkpoints[100].items()}
    return TrainedVAE(
        backend, settings, checkpoints[100], checkpoints, np.linspace(50, 20, 100), 0.1, 0.2, 0.1
    )


IMAGES = 8
BROKEN_NOISE_SEED = 17  # a training run (noise seed) that fails
SETTINGS = VAEStudySettings(
    backends=("pyro", "numpyro", "handrolled"),
    n_test=IMAGES,
    iwae_k=200,
    checkpoint_images=IMAGES,
    bdmc_images=IMAGES,
    bdmc_lengths=(0.5, 1.0),
    ais=VAEAISSettings(temperatures=300, chains=32, leapfrog_steps=2, pilot_images=1),
    qstar=FitSettings(lr=0.05, draws=64, window=50, max_steps=300),
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae")
    tables, _, _ = small_study(folder)
    return folder, tables


def test_the_study_writes_every_table_and_a_failed_backend_leaves_the_others_whole(study):
    folder, _tables = study
    stored = ResultsStore(folder).vae_tables()
    assert set(stored) == set(r.TABLES)
    for name, columns in r.TABLES.items():
        assert list(stored[name].columns) == list(columns)
    backends = stored["backends"].set_index(r.BACKEND)
    assert backends.at["pyro", r.STATUS] == r.FAILED
    assert "broken on purpose" in backends.at["pyro", r.ERROR]
    assert (backends.loc[["numpyro", "handrolled"], r.STATUS] == r.OK).all()
    assert len(stored["images"]) == 2 * IMAGES
    assert set(stored["checkpoints"][r.STEP]) == {0, 10, 100}
    assert len(stored["intervals"]) == 2 * (2 + 1)  # two intervals and the whole, per backend
    assert len(stored["bdmc"]) == 2 * 2
    assert len(stored["agreement"]) == len(r.AGREEMENT_QUANTITIES)  # one pair of backends that ran


def test_the_backend_table_is_the_average_of_the_image_table_with_consistent_gaps(study):
    _, tables = study
    ok = tables["backends"][tables["backends"][r.STATUS] == r.OK].set_index(r.BACKEND)
    images = tables["images"]
    for backend, row in ok.iterrows():
        mine = images[images[r.BACKEND] == backend]
        for quantity in (r.LOG_P, r.ELBO, r.KL, r.APPROXIMATION, r.AMORTIZATION):
            assert row[quantity] == pytest.approx(mine[quantity].mean(), abs=1e-12)
            assert row[r.se(quantity)] == pytest.approx(np.sqrt((mine[r.se(quantity)] ** 2).sum()) / IMAGES)
        assert row[r.APPROXIMATION] + row[r.AMORTIZATION] == pytest.approx(row[r.KL], abs=1e-12)
        assert row[r.KL] == pytest.approx(row[r.LOG_P] - row[r.ELBO], abs=1e-12)


def test_the_training_split_adds_up_at_the_checkpoints(study):
    _, tables = study
    checkpoints, intervals = tables["checkpoints"], tables["intervals"]
    for backend, rows in checkpoints.groupby(r.BACKEND):
        rows = rows.sort_values(r.STEP)
        mine = intervals[intervals[r.BACKEND] == backend]
        consecutive = mine[mine[r.SPAN] == r.INTERVAL].sort_values(r.STEP_FROM)
        np.testing.assert_allclose(consecutive[r.ELBO_GAIN], np.diff(rows[r.ELBO]), atol=1e-12)
        np.testing.assert_allclose(mine[r.LOG_P_GAIN] + mine[r.KL_FALL], mine[r.ELBO_GAIN], atol=1e-12)
        whole = mine[mine[r.SPAN] == r.WHOLE].iloc[0]
        assert whole[r.ELBO_GAIN] == pytest.approx(consecutive[r.ELBO_GAIN].sum(), abs=1e-10)
        assert whole[r.se(r.KL_FALL)] ** 2 == pytest.approx(
            sum(rows.iloc[i][r.se(q)] ** 2 for i in (0, -1) for q in (r.LOG_P, r.ELBO))
        )


def test_identical_backends_agree_within_noise(study):
    """numpyro and handrolled here evaluate the same weights with independent draws: |z| < 4."""
    _, tables = study
    agreement = tables["agreement"]
    assert not agreement[r.FLAGGED].any()
    assert (agreement[r.Z].abs() < 4.0).all()


def test_bad_settings_are_each_named_once():
    with pytest.raises(SettingsError) as error:
        from_table(
            {
                "backends": ["pyro", "stan"],
                "n_test": 0,
                "iwae_k": 1,
                "bogus": 1,
                "ais": {"chains": 1, "nonsense": 2},
                "qstar": {"draws": 3},
            }
        )
    problems = error.value.problems
    assert any("'stan'" in p for p in problems)
    assert any("n_test" in p for p in problems)
    assert any("iwae_k" in p for p in problems)
    assert any("'bogus'" in p for p in problems)
    assert any("chains" in p for p in problems)
    assert any("'nonsense'" in p for p in problems)
    assert any("draws" in p for p in problems)
    assert len(problems) == len(set(problems)) == 7


def test_profiles_wire_the_study_in_and_quick_leaves_it_out():
    assert matrix.expand(matrix.load("vae")).vae is not None
    assert matrix.expand(matrix.load("vae")).cells == []
    assert matrix.expand(matrix.load("full")).vae is not None
    assert matrix.expand(matrix.load("quick")).vae is None
    with pytest.raises(matrix.ConfigError) as error:
        matrix.expand({"vae": {"n_test": -1}})
    assert any("n_test" in p for p in error.value.problems)
    only_numpyro = matrix.expand({"backends": ["numpyro"], "vae": {}})
    assert only_numpyro.vae.backends == ("numpyro",)
    assert dataclasses.replace(only_numpyro.vae).checked() == only_numpyro.vae


def _nats(value: float) -> str:
    """A number as the first screen shows it: to 0.01, with a true minus sign."""
    return f"{value:.2f}".replace("-", "\u2212")


def test_the_report_section_shows_the_study_and_its_headline(study, tmp_path):
    from ppl_suite.report.document import Context, Image, Table, Text
    from ppl_suite.vae.report import VAE

    folder, _ = study
    context = Context(ResultsStore(folder), tmp_path / "figures")
    blocks = VAE().build(context)
    context.drawn()
    images = [block for block in blocks if isinstance(block, Image)]
    assert len(images) == 2 and all(image.path.exists() for image in images)
    assert sum(isinstance(block, Table) for block in blocks) == 4  # backends, intervals, BDMC, agreement
    assert any("pyro failed" in block.text for block in blocks if isinstance(block, Text))
    empty = Context(ResultsStore(tmp_path / "nothing"), tmp_path / "figures")
    assert VAE().headline(empty) == [] and VAE().cost(empty) == [] and VAE().summary(empty) == ""
    assert VAE().build(empty) == []  # nothing to say: the section is left out


def test_the_first_screen_gives_each_backends_final_split_its_gain_and_the_kls_path(study, tmp_path):
    """One row per trained backend, each number the stored tables' (to 0.01): log p = ELBO + KL of the
    trained model, the ELBO's gain over training = Δlog p + (−ΔKL), and the KL at the first, lowest
    and last checkpoints."""
    from ppl_suite.report.document import Context, Table, Text
    from ppl_suite.vae.report import VAE

    folder, tables = study
    headline = VAE().headline(Context(ResultsStore(folder), tmp_path / "figures"))
    (table,) = [block.frame for block in headline if isinstance(block, Table)]
    backends = tables["backends"][tables["backends"][r.STATUS] == r.OK]
    assert list(table["backend"]) == list(backends[r.BACKEND]) == ["numpyro", "handrolled"]
    whole = tables["intervals"][tables["intervals"][r.SPAN] == r.WHOLE]
    for (_, shown), (_, final), (_, gain) in zip(
        table.iterrows(), backends.iterrows(), whole.iterrows(), strict=True
    ):
        assert shown["log p(x) = ELBO + KL"] == (
            f"{_nats(final[r.LOG_P])} = {_nats(final[r.ELBO])} + {_nats(final[r.KL])}"
        )
        fall = _nats(gain[r.KL_FALL])
        fall = f"({fall})" if gain[r.KL_FALL] < 0 else fall  # a negative term in brackets
        assert shown["the ELBO's gain = Δlog p + (−ΔKL)"] == (
            f"{_nats(gain[r.ELBO_GAIN])} = {_nats(gain[r.LOG_P_GAIN])} + {fall}"
        )
        points = tables["checkpoints"][tables["checkpoints"][r.BACKEND] == shown["backend"]]
        points = points.sort_values(r.STEP)
        low = points.loc[points[r.KL].idxmin()]
        path = shown["KL over training"]
        assert path.startswith(f"{_nats(points[r.KL].iloc[0])} (step 0) → ")
        assert path.endswith(f" → {_nats(points[r.KL].iloc[-1])} (step 100)")
        assert f"{_nats(low[r.KL])} (step {int(low[r.STEP])})" in path
    said = " ".join(block.text for block in headline if isinstance(block, Text))
    rose = (whole[r.KL_FALL] + 2 * whole[r.se(r.KL_FALL)] < 0).any()
    assert ("the KL ended higher than it started" in said) == rose


def test_the_kl_path_says_fell_then_rose_only_where_each_change_is_beyond_its_noise():
    from ppl_suite.vae.report import KLPath

    def path(kl, log_p, se):
        return KLPath.of(
            pd.DataFrame(
                {
                    r.STEP: [0, 10, 100],
                    r.KL: kl,
                    r.se(r.KL): se,
                    r.LOG_P: log_p,
                    r.se(r.LOG_P): se,
                }
            )
        )

    turned = path([0.82, 0.07, 1.01], [-40.0, -25.0, -19.0], 0.01)
    assert turned.fell_then_rose and turned.text == "0.82 (step 0) → 0.07 (step 10) → 1.01 (step 100)"
    assert not path([0.82, 0.07, 1.01], [-40.0, -25.0, -19.0], 0.5).fell_then_rose  # within noise
    assert not path([0.82, 0.07, 1.01], [-40.0, -19.0, -19.0], 0.01).fell_then_rose  # log p did not rise
    falling = path([0.82, 0.5, 0.07], [-40.0, -25.0, -19.0], 0.01)
    assert not falling.fell_then_rose and falling.text == "0.82 (step 0) → 0.07 (step 100)"


def test_a_vae_folder_reads_true_without_empty_sections_and_with_its_cost(study, tmp_path):
    """The report of a VAE-only folder: the first screen speaks of the study, no section without
    something to say (the cells' sections) is written or listed, nothing says every model has an exact
    log p(x), and the cost section shows the study's stored seconds."""

    from ppl_suite import schema
    from ppl_suite.report.render import write_report
    from ppl_suite.vae.report import cost_table

    folder, tables = study
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    entry = {
        schema.MANIFEST_STARTED: "2000-01-01T00:00:00+00:00",
        schema.MANIFEST_FINISHED: "2000-01-01T00:05:00+00:00",
    }
    config = {"config": {"vae": {"n_test": IMAGES}}, "versions": {"numpy": np.__version__}}
    ResultsStore(copy).write_manifest(config | {r.MANIFEST_VAE: entry, **entry})
    text = write_report(copy, tmp_path / "out", "md", processes=1)["md"].read_text(encoding="utf-8")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = [line for line in contents.splitlines() if line.startswith("- [")]
    assert len(listed) == len(headings) - 1  # every written section, and no other, is in the contents
    bodies = text.split("\n## ")[1:]
    for body in bodies:
        assert body.split("\n", 1)[1].strip(), body  # no section without a body
    assert "## The identity, cell by cell" not in text and "Not in this results folder" not in text
    assert "holds no cell" not in text and "Every model of this run has an exact" not in text
    latent = int(tables["backends"][r.LATENT_DIM].iloc[0])
    assert f"This run: the VAE study (`ppl-suite vae`): the digits VAE (latent dimension {latent})" in text
    assert (
        f"by numpyro and handrolled (1 training run each), evaluated on {IMAGES} test images; pyro failed"
        in text
    )
    assert "## Cost" in text and "### The VAE study" in text
    cost = text.split("## Cost", 1)[1].split("\n## ", 1)[0]
    shown = cost_table(tables)
    assert list(shown["backend"]) == ["numpyro", "handrolled"]
    ok = tables["backends"][tables["backends"][r.STATUS] == r.OK]
    for (_, row), (_, stored) in zip(shown.iterrows(), ok.iterrows(), strict=True):
        parts = {"training": r.TRAINING_SECONDS, "AIS": r.AIS_SECONDS, "checkpoints": r.CHECKPOINT_SECONDS}
        for column, name in (parts | {"set-up": r.COMPILE_SECONDS}).items():
            assert row[column] == stored[name]
        bdmc = tables["bdmc"][tables["bdmc"][r.BACKEND] == row["backend"]]["seconds"].sum()
        assert row["BDMC"] == pytest.approx(bdmc, rel=1e-12)
        line = next(line for line in cost.splitlines() if line.startswith(f"| {row['backend']} |"))
        assert f"| {row['AIS']:,.1f} |" in line and f"| {row['checkpoints']:,.1f} |" in line
    assert "other runs" not in shown  # one training run per backend here


def test_the_cost_table_sums_the_other_runs_and_says_what_is_not_stored():
    """Per ok backend: the other ok runs counted and their seconds summed; a time an older study did
    not keep is missing (NaN), never a partial sum."""
    from ppl_suite.vae.report import cost_table

    backends = r.frame(
        "backends",
        [
            {r.BACKEND: "numpyro", r.STATUS: r.OK, r.TRAINING_SECONDS: 1.0, r.CHECKPOINT_SECONDS: 2.0},
            {r.BACKEND: "pyro", r.STATUS: r.FAILED},
            {r.BACKEND: "handrolled", r.STATUS: r.OK, r.TRAINING_SECONDS: 3.0},
        ],
    )
    runs = r.frame(
        "runs",
        [
            {r.BACKEND: "numpyro", r.RUN: 0, r.STATUS: r.OK, r.TRAINING_SECONDS: 1.0, r.IWAE_SECONDS: 9.0},
            {r.BACKEND: "numpyro", r.RUN: 1, r.STATUS: r.OK, r.TRAINING_SECONDS: 1.5, r.IWAE_SECONDS: 0.5},
            {r.BACKEND: "numpyro", r.RUN: 2, r.STATUS: r.OK, r.TRAINING_SECONDS: 2.5, r.IWAE_SECONDS: 0.25},
            {r.BACKEND: "numpyro", r.RUN: 3, r.STATUS: r.FAILED},
            {r.BACKEND: "handrolled", r.RUN: 1, r.STATUS: r.OK, r.TRAINING_SECONDS: 4.0},
        ],
    )
    bdmc = pd.DataFrame({r.BACKEND: ["numpyro", "numpyro"], "seconds": [0.5, 1.0]})
    table = cost_table({"backends": backends, "runs": runs, "bdmc": bdmc}).set_index("backend")
    assert list(table.index) == ["numpyro", "handrolled"]
    assert table.at["numpyro", "other runs"] == 2 and table.at["handrolled", "other runs"] == 1
    assert table.at["numpyro", "other runs: training"] == 4.0
    assert table.at["numpyro", "other runs: IWAE-K"] == 0.75
    assert np.isnan(table.at["handrolled", "other runs: IWAE-K"])  # not stored
    assert table.at["numpyro", "checkpoints"] == 2.0 and np.isnan(table.at["handrolled", "checkpoints"])
    assert table.at["numpyro", "BDMC"] == 1.5 and np.isnan(table.at["handrolled", "BDMC"])


def test_the_store_writes_the_tables_atomically_and_fresh_removes_only_them(tmp_path):
    store = ResultsStore(tmp_path)
    frame = r.frame("losses", [{r.BACKEND: "numpyro", r.STEP: 0, r.LOSS: 1.5}])
    store.write_vae_table("losses", frame)
    assert store.vae_tables()["losses"].equals(frame)
    (tmp_path / r.FOLDER / f".losses.parquet.abcd1234{PARTIAL}").write_bytes(b"half")  # a killed write
    (tmp_path / r.FOLDER / "mine.csv").write_text("the user's own file")
    store.write_vae_part("0123456789abcdef", "losses.parquet", b"kept rows")
    assert store.vae_part("0123456789abcdef", "losses.parquet") == b"kept rows"
    assert store.vae_part("fedcba9876543210", "losses.parquet") is None
    with pytest.raises(ValueError, match="part is <16 hex digits>"):
        store.write_vae_part("../../elsewhere", "losses.parquet", b"")
    (tmp_path / r.FOLDER / "parts" / f".0123456789abcdef.trained.npz.abcd1234{PARTIAL}").write_bytes(b"half")
    (tmp_path / r.FOLDER / "parts" / "notes.txt").write_text("the user's own file")
    assert store.clean_temporary() == 2
    assert store.discard() == 2
    assert store.vae_tables() == {}
    assert store.vae_part("0123456789abcdef", "losses.parquet") is None
    assert (tmp_path / r.FOLDER / "mine.csv").exists()
    assert (tmp_path / r.FOLDER / "parts" / "notes.txt").exists()

    cell = tmp_path / "cells" / "0123456789abcdef.json"  # a run's cell: not the VAE study's to remove
    cell.parent.mkdir()
    cell.write_text("{}")
    store.write_vae_table("losses", frame)
    store.write_vae_part("0123456789abcdef", "losses.parquet", b"kept rows")
    (tmp_path / r.FOLDER / "parts" / f".0123456789abcdef.runs.parquet.abcd1234{PARTIAL}").write_bytes(b"half")
    assert store.discard(vae_only=True) == 3
    assert cell.exists() and (tmp_path / r.FOLDER / "parts" / "notes.txt").exists()


class StopAt(BaseException):
    """Stands for a stop (Ctrl-C, a killed process) part way through a study: not an error of a backend."""


def small_study(folder, settings=SETTINGS, stop_when=None):
    """Run the tiny study into ``folder``; returns its tables, the backends trained and the log lines.
    ``stop_when``: a log line's prefix at which the study is stopped (raises StopAt)."""
    trained, lines = [], []

    def counting_trainer(backend, data, training):
        trained.append(backend)
        return trainer(backend, data, training)

    def log(line):
        lines.append(line)
        if stop_when is not None and line.startswith(stop_when):
            raise StopAt(line)

    model = LatentModel(DIM, log_likelihood, simulate)
    theta = {k: jnp.asarray(v) for k, v in weights_at(2.5).items() if k in DECODER}
    z = jax.random.normal(jax.random.PRNGKey(0), (IMAGES, DIM))
    test = np.asarray(simulate(theta, jax.random.PRNGKey(1), z))
    data = SimpleNamespace(train=test[::-1].copy(), test=test)
    tables = run_study(
        settings,
        folder,
        trainer=counting_trainer,
        data=data,
        model=model,
        encode=encode,
        decoder=DECODER,
        log=log,
    )
    return tables, trained, lines


def test_a_stopped_study_keeps_each_finished_backend_and_a_rerun_redoes_only_the_rest(study, tmp_path):
    _, whole = study
    with pytest.raises(StopAt):  # stopped while the third backend evaluates, after its training
        small_study(tmp_path, stop_when="vae handrolled: trained")
    written = ResultsStore(tmp_path).vae_tables()
    assert written["backends"][r.BACKEND].tolist() == ["pyro", "numpyro"]  # the finished ones, written
    assert written["backends"][r.STATUS].tolist() == [r.FAILED, r.OK]

    tables, trained, lines = small_study(tmp_path)
    assert trained == ["pyro"]  # the failed backend runs again; the others' training is kept
    assert any(line.startswith("vae numpyro: its stored evaluation reused") for line in lines)
    assert any(line.startswith("vae handrolled: its stored training reused") for line in lines)
    for name in ("backends", "images", "checkpoints", "intervals", "bdmc", "losses", "agreement"):
        # every number but the times; the error's traceback passes through another caller here
        same = [c for c in tables[name].columns if c != r.ERROR and not c.endswith("seconds")]
        pd.testing.assert_frame_equal(tables[name][same], whole[name][same], check_exact=True, obj=name)

    _, trained, lines = small_study(tmp_path)
    assert trained == ["pyro"]
    assert sum("stored evaluation reused" in line for line in lines) == 2


def finished_study(study, folder):
    """``folder`` as ``small_study(folder)`` leaves it, from the module's study (a copy of its folder,
    whose kept parts name no folder): returns the study's tables."""
    shutil.copytree(study[0], folder, dirs_exist_ok=True)
    return study[1]


def test_a_changed_setting_redoes_what_it_changes_and_no_more(study, tmp_path):
    finished_study(study, tmp_path)
    _, trained, lines = small_study(tmp_path, dataclasses.replace(SETTINGS, iwae_k=150))
    assert trained == ["pyro"]  # an evaluation setting: the training is kept, the evaluation redone
    assert sum("stored training reused" in line for line in lines) == 2
    changed = dataclasses.replace(SETTINGS, iwae_k=150, training={"steps": 50})
    _, trained, lines = small_study(tmp_path, changed)
    assert trained == ["pyro", "numpyro", "handrolled"]  # a training setting: everything redone
    assert not any("reused" in line for line in lines)


def test_other_training_runs_are_kept_compared_as_procedures_and_extended_without_redoing(tmp_path):
    three = dataclasses.replace(SETTINGS, training_runs=3)
    tables, trained, _ = small_study(tmp_path, three)
    runs = tables["runs"]
    assert trained == ["pyro", "numpyro", "numpyro", "numpyro", "handrolled", "handrolled", "handrolled"]
    assert runs.groupby(r.BACKEND)[r.RUN].apply(list).to_dict() == {
        "numpyro": [0, 1, 2],
        "handrolled": [0, 1, 2],
    }
    backends = tables["backends"].set_index(r.BACKEND)
    first = runs[runs[r.RUN] == 0].set_index(r.BACKEND)
    for backend in ("numpyro", "handrolled"):  # run 0 is the run evaluated in full
        assert first.at[backend, r.ELBO] == backends.at[backend, r.ELBO]
        assert first.at[backend, r.IWAE] == backends.at[backend, r.IWAE]
    assert runs[r.ELBO].nunique() == len(runs)  # other noise seeds, other weights
    procedures = tables["procedures"]
    assert sorted(procedures[r.QUANTITY]) == sorted(r.RUN_QUANTITIES)
    row = procedures[procedures[r.QUANTITY] == r.ELBO].iloc[0]
    a, b = (runs.loc[runs[r.BACKEND] == k, r.ELBO].to_numpy() for k in (row[r.BACKEND_A], row[r.BACKEND_B]))
    assert row[r.DIFFERENCE] == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert row[r.T] == pytest.approx(row[r.DIFFERENCE] / row["se"])
    assert not row[r.FLAGGED]  # the same training procedure (this stand-in's) under two names

    from ppl_suite.report.document import Context, Heading, Image, Table
    from ppl_suite.vae.report import VAE

    context = Context(ResultsStore(tmp_path), tmp_path / "figures")
    blocks = VAE().build(context)
    context.drawn()
    assert sum(isinstance(block, Image) for block in blocks) == 3  # gaps, training, runs
    assert sum(isinstance(block, Table) for block in blocks) == 5  # and the procedures' table
    assert any(isinstance(b, Heading) and "training procedures" in b.text for b in blocks)
    assert any("None flagged" in getattr(b, "text", "") for b in blocks)
    assert (procedures[r.DETECTABLE] > procedures[r.DIFFERENCE].abs()).all()  # what "not flagged" means

    _, trained, _ = small_study(tmp_path, dataclasses.replace(SETTINGS, training_runs=4))
    assert trained == ["pyro", "numpyro", "handrolled"]  # only run 3 is new


def test_the_procedures_test_keeps_its_level_with_few_runs():
    """Same procedure, five runs a side, different spreads: Welch's t rejects at its level. With the
    normal in place of Student's t (a z on the runs' sds) the rate at 5% would be about 9%."""
    rng = np.random.default_rng(7)
    trials, level = 2000, 0.05
    # each trial a quantity of its own (a column of the runs table): one call tests them all, each as
    # its own pair of samples, the draws the same as trial by trial
    trial_values = {
        f"trial {i}": np.concatenate([rng.normal(-20.0, 0.02, 5), rng.normal(-20.0, 0.04, 5)])
        for i in range(trials)
    }
    runs = pd.DataFrame({r.BACKEND: ["a"] * 5 + ["b"] * 5, r.STATUS: r.OK, **trial_values})
    procedures = between_procedures(runs, tuple(trial_values))
    assert list(procedures[r.QUANTITY]) == list(trial_values)  # one row per trial
    rejected = int((procedures[r.P] < level).sum())
    rate, se = rejected / trials, np.sqrt(level * (1 - level) / trials)
    assert abs(rate - level) < 4 * se, f"rejection rate {rate:.3f} at level {level}"


def test_the_procedures_test_sees_a_shift_of_a_few_run_sds():
    rng = np.random.default_rng(8)
    values = np.concatenate([rng.normal(-20.0, 0.02, 8), rng.normal(-20.1, 0.02, 8)])
    runs = pd.DataFrame({r.BACKEND: ["a"] * 8 + ["b"] * 8, r.STATUS: r.OK, r.ELBO: values})
    row = between_procedures(runs, (r.ELBO,)).iloc[0]
    assert row[r.FLAGGED] and row[r.P] < FLAG_P
    sd_a, sd_b = values[:8].std(ddof=1), values[8:].std(ddof=1)
    welch_df = (sd_a**2 / 8 + sd_b**2 / 8) ** 2 / ((sd_a**2 / 8) ** 2 / 7 + (sd_b**2 / 8) ** 2 / 7)
    assert row[r.DF] == pytest.approx(welch_df)


def test_a_failed_training_run_is_recorded_and_the_backend_keeps_the_others(tmp_path):
    settings = dataclasses.replace(SETTINGS, training_runs=4, training={"noise_seed": BROKEN_NOISE_SEED - 2})
    tables, _, lines = small_study(tmp_path, settings)
    runs = tables["runs"]
    failed = runs[runs[r.STATUS] == r.FAILED]
    assert sorted(failed[r.BACKEND]) == ["handrolled", "numpyro"] and set(failed[r.RUN]) == {2}
    assert set(failed[r.NOISE_SEED]) == {BROKEN_NOISE_SEED}
    assert all("broken on purpose" in error for error in failed[r.ERROR])
    assert (tables["backends"].set_index(r.BACKEND).loc[["numpyro", "handrolled"], r.STATUS] == r.OK).all()
    assert set(tables["procedures"][r.RUNS_A]) == {3}  # runs 0, 1 and 3
    assert any(line.startswith("vae numpyro run 2: failed") for line in lines)


def test_a_damaged_kept_part_is_said_and_redone(study, tmp_path):
    whole = finished_study(study, tmp_path)
    parts = tmp_path / r.FOLDER / "parts"
    for path in parts.glob("*.images.parquet"):
        path.write_bytes(b"not a parquet file")
    for path in parts.glob("*.trained.npz"):
        path.write_bytes(b"not an npz file")
    again, trained, lines = small_study(tmp_path)
    assert trained == ["pyro", "numpyro", "handrolled"]
    assert sum("a kept part is unreadable, redoing it" in line for line in lines) == 4  # rows, then training
    same = [c for c in whole["images"].columns if not c.endswith("seconds")]
    pd.testing.assert_frame_equal(again["images"][same], whole["images"][same], check_exact=True)


def test_digests_follow_what_changes_the_numbers_and_nothing_else():
    from ppl_suite.vae import stored
    from ppl_suite.vae.training import TrainingSettings

    images = np.eye(4)
    base = TrainingSettings(steps=10)
    trained = stored.training_digest("numpyro", base, images, ("ppl_suite.vae.training",))
    same_noise = dataclasses.replace(base, noise_seed=base.seed)
    assert stored.training_digest("numpyro", same_noise, images, ("ppl_suite.vae.training",)) == trained
    for other in (
        stored.training_digest("handrolled", base, images, ("ppl_suite.vae.training",)),
        stored.training_digest(
            "numpyro", dataclasses.replace(base, noise_seed=1), images, ("ppl_suite.vae.training",)
        ),
        stored.training_digest("numpyro", base, images[::-1], ("ppl_suite.vae.training",)),
        stored.training_digest(
            "numpyro", base, images, ("ppl_suite.vae.training", "ppl_suite.vae.train_numpyro")
        ),
    ):
        assert other != trained
    evaluated = stored.evaluation_digest(trained, SETTINGS, images, ("ppl_suite.vae.evaluation",))
    unchanged = dataclasses.replace(SETTINGS, backends=("numpyro",), training_runs=5, training={"steps": 3})
    assert stored.evaluation_digest(trained, unchanged, images, ("ppl_suite.vae.evaluation",)) == evaluated
    for changed in (dataclasses.replace(SETTINGS, iwae_k=300), dataclasses.replace(SETTINGS, seed=1)):
        assert stored.evaluation_digest(trained, changed, images, ("ppl_suite.vae.evaluation",)) != evaluated
    runs = {
        stored.run_digest(trained, run, SETTINGS, images, ("ppl_suite.vae.evaluation",)) for run in (1, 2)
    }
    assert len(runs | {evaluated}) == 3  # a run's row is its own, whatever training it shares
    cheaper_ais = dataclasses.replace(SETTINGS, ais=dataclasses.replace(SETTINGS.ais, temperatures=100))
    assert stored.run_digest(trained, 1, cheaper_ais, images, ("ppl_suite.vae.evaluation",)) in runs
