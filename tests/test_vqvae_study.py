"""The VQ-VAE study on a small slice of the digits: its tables, their exact identities, the kept work a
rerun reuses, its settings' messages and its wiring into the CLI and the profiles."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from models.vae_digits import data as digits
from ppl_suite import matrix, results
from ppl_suite.cli import main
from ppl_suite.store import ResultsStore
from ppl_suite.vae.settings import SettingsError
from ppl_suite.vqvae import results as r
from ppl_suite.vqvae.settings import VQVAEStudySettings, from_table
from ppl_suite.vqvae.study import run_study

TRAINING = {"codes": 4, "positions": 2, "hidden": 8, "steps": 5, "batch_size": 20}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    loaded = digits.load()
    data = SimpleNamespace(train=loaded.train[:60], test=loaded.test[:6])
    settings = VQVAEStudySettings(
        backends=("handrolled",), n_test=6, draws=40, iwae_ks=(1, 10), gradient_draws=4, training=TRAINING
    )
    folder = tmp_path_factory.mktemp("vqvae")
    log: list[str] = []
    tables = run_study(settings, folder, data=data, log=log.append)
    again: list[str] = []
    run_study(settings, folder, data=data, log=again.append)
    ResultsStore(folder).write_manifest({})  # as `ppl-suite vae` does: results.* read results folders only
    return SimpleNamespace(tables=tables, folder=folder, log=log, again=again, data=data)


@pytest.mark.slow  # trains three objectives twice (JAX compilation: tens of seconds)
def test_the_exact_table_is_read_back_with_its_columns_and_holds_the_identity(study):
    exact = results.vae_tables(study.folder)["exact"]
    assert list(exact.columns[:7]) == ["backend", "objective", "step", "image", "log_evidence", "elbo", "kl"]
    steps = (0, 1, 2, 5)  # default_checkpoints(5)
    assert len(exact) == 3 * len(steps) * 6
    assert set(exact["objective"]) == {"enumerated", "score_function", "vq"}
    identity = exact["log_evidence"] - exact["elbo"] - exact["kl"]
    assert np.all(np.abs(identity) <= 1e-12 * np.abs(exact["log_evidence"]))
    assert np.all(exact["elbo_nearest"] <= exact["log_evidence"]) and np.all(exact["kl"] >= -1e-12)
    # every objective starts at the same weights: the same exact terms at step 0
    start = exact[exact["step"] == 0].groupby("objective")["log_evidence"].apply(list)
    assert start["enumerated"] == start["score_function"] == start["vq"]


@pytest.mark.slow  # trains three objectives twice (JAX compilation: tens of seconds)
def test_the_training_split_adds_up_exactly_and_the_whole_is_the_sum_of_its_intervals(study):
    split = study.tables["vqvae_split"]
    assert np.all(np.abs(split[r.RESIDUAL]) < 1e-10)
    for _, part in split.groupby([r.OBJECTIVE, r.IMAGES]):
        intervals, whole = part[part[r.SPAN] == r.INTERVAL], part[part[r.SPAN] == r.WHOLE]
        for column in (r.ELBO_GAIN, r.LOG_EVIDENCE_GAIN, r.KL_FALL):
            assert whole[column].iloc[0] == pytest.approx(intervals[column].sum(), abs=1e-10)
    checkpoints = study.tables["vqvae_checkpoints"]
    assert set(checkpoints[r.IMAGES]) == {r.TEST, r.TRAIN}
    assert checkpoints[r.IDENTITY_RESIDUAL].max() < 1e-11


@pytest.mark.slow  # trains three objectives twice (JAX compilation: tens of seconds)
def test_the_estimators_and_gradients_tables_are_whole(study):
    estimators = study.tables["vqvae_estimators"]
    assert len(estimators) == 3 * 6 * 3  # objectives x images x (importance, IWAE-1, IWAE-10)
    assert np.allclose(estimators[r.Z], (estimators[r.VALUE] - estimators[r.EXACT]) / estimators[r.SE])
    calibration = study.tables["vqvae_calibration"]
    assert set(calibration[r.N_IMAGES] + calibration[r.UNRELIABLE]) == {6}
    gradients = study.tables["vqvae_gradients"]
    assert set(gradients[r.POINT]) == {r.START, r.END}
    assert set(gradients[r.DRAWS]) == {4}
    runs = study.tables["vqvae_runs"]
    assert list(runs[r.STATUS]) == [r.OK] * 3


@pytest.mark.slow  # trains three objectives twice (JAX compilation: tens of seconds)
def test_a_rerun_reuses_every_kept_part(study):
    assert not any("trained in" in line for line in study.again)
    assert sum("stored evaluation reused" in line for line in study.again) == 3
    assert not any("draws per point" in line for line in study.again)
    assert all(len(line) for line in study.log)


@pytest.mark.slow  # uses the study fixture
def test_the_report_section_answers_the_question_in_the_runs_numbers(study, tmp_path):
    from ppl_suite.report.render import write_report
    from ppl_suite.store import ResultsStore

    ResultsStore(study.folder).write_manifest({"command": ["ppl-suite", "vae", "--model", "vqvae_digits"]})
    markdown = write_report(study.folder, tmp_path / "report")["md"].read_text()
    runs = study.tables["vqvae_runs"]
    assert "This run: the VQ-VAE study (`ppl-suite vae --model vqvae_digits`): K = 4 codes" in markdown
    enumerated = runs[runs[r.OBJECTIVE] == "enumerated"].iloc[0]
    split = study.tables["vqvae_split"]
    whole = split[
        (split[r.SPAN] == r.WHOLE)
        & (split[r.OBJECTIVE] == "enumerated")
        & (split[r.BACKEND] == enumerated[r.BACKEND])
        & (split[r.IMAGES] == r.TEST)
    ].iloc[0]
    assert (  # the first screen's split is the stored one
        f"the test ELBO rose {whole[r.ELBO_GAIN]:.3f} nats per image = Δlog p\\_θ(x) "
        f"{whole[r.LOG_EVIDENCE_GAIN]:.3f} + (−ΔKL) {whole[r.KL_FALL]:.3f}"
    ) in markdown
    assert f"L log K = 2 log 4 = {2 * np.log(4):.3f} nats" in markdown
    assert "### The VQ-VAE study" in markdown.split("## Cost", 1)[1]  # training seconds in the Cost section
    assert "vqvae-curves.png" in markdown and "vqvae-images.png" in markdown


def test_results_read_the_exact_table_beside_the_vae_tables(tmp_path):
    from ppl_suite.store import ResultsStore

    row = {r.BACKEND: "pyro", r.OBJECTIVE: "vq", r.STEP: 0, r.IMAGE: 0} | dict.fromkeys(r.TERMS, -1.0)
    ResultsStore(tmp_path).write_manifest({})  # a results folder: results.* read nothing else
    ResultsStore(tmp_path).write_vae_table("exact", r.frame("exact", [row]))
    tables = results.vae_tables(tmp_path)
    assert list(tables) == ["exact"] and tables["exact"].to_dict("records") == [row]
    assert ResultsStore(tmp_path).discard(vae_only=True) == 1 and not (tmp_path / "vae").exists()


def test_bad_settings_are_each_named_once():
    with pytest.raises(SettingsError) as error:
        from_table(
            {"backends": ["stan"], "draws": 10, "iwae_ks": [100], "training": {"codes": 1}, "extra": 1}
        )
    problems = "\n".join(error.value.problems)
    for word in ("stan", "extra", "IWAE at K = 100", "codes"):
        assert problems.count(word) >= 1
    with pytest.raises(SettingsError, match="codes \\*\\* positions"):
        from_table({"training": {"codes": 300, "positions": 2}})


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"draws": 5 * 10**7}, "vqvae: draws = 50,000,000 is too large: at 6,400 float64 numbers per draw"),
        ({"gradient_draws": 10**8}, "vqvae: gradient_draws = 100,000,000 is too large"),
        ({"training": {"hidden": 10**9}}, "vqvae.training: the weights (of codes, code_dim, hidden)"),
    ],
)
def test_sizes_beyond_the_memory_budget_are_refused_with_what_each_draw_keeps(table, said):
    with pytest.raises(SettingsError) as error:
        from_table(table)
    assert len(error.value.problems) == 1 and error.value.problems[0].startswith(said)


def test_the_profile_and_the_command_line_wire_the_study_in(tmp_path, capsys):
    plan = matrix.expand(matrix.load("vqvae"))
    assert plan.cells == [] and plan.vae is None and plan.vqvae is not None
    assert plan.vqvae.training_settings().codes ** plan.vqvae.training_settings().positions == 256
    code = main(["vae", "--model", "vqvae_digits", "--latent-dim", "3", "--out", str(tmp_path / "x")])
    assert code == 2 and "--latent-dim" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_every_code_is_enumerated_once():
    from models.vqvae_digits import network

    codes = network.all_codes(3, 2)
    assert [tuple(c) for c in codes] == list(itertools.product(range(3), repeat=2))
    assert list(network.code_index(codes, 3)) == list(range(9))
