"""``ppl_suite.check`` calls a model as ``MCMC.run`` and ``SVI.run`` do, ``model(*args, **kwargs)``;
the data dict, a DataFrame, files and ``FILE.py:FUNCTION`` are forms of the same call; natural
mistakes are refused in one line naming the fix. Nothing here fits a model (fast)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppl_suite.checking import calls, sources
from ppl_suite.checking.api import CheckResult, check, model_text, prepare
from ppl_suite.errors import InputProblem

rng = np.random.default_rng(0)
X = rng.normal(size=12)
GROUP = rng.integers(0, 3, 12)
Y = rng.normal(size=12)


def numpyro_model(x, group, n_groups, y=None):
    import numpyro
    import numpyro.distributions as dist

    a = numpyro.sample("a", dist.Normal(0.0, 1.0).expand([n_groups]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(a[group] + b * x, 1.0).to_event(1), obs=y)


def recorder(x, group, n_groups, y=None, *, link="identity"):
    return {"x": x, "group": group, "n_groups": n_groups, "y": y, "link": link}


def test_args_and_kwargs_bind_to_the_models_parameters_and_the_call_is_rebuilt_from_them():
    bound = calls.bind(recorder, (X, GROUP, 3), {"y": Y, "link": "logit"}, "model")
    assert bound.form == calls.CALL_FORM
    assert sorted(bound.data) == ["group", "n_groups", "x", "y"] and bound.params == {"link": "logit"}
    assert bound.data["n_groups"] == 3 and isinstance(bound.data["n_groups"], int)  # sizes a plate
    called = calls.calling(recorder, bound.form, bound.nones)(bound.data, bound.params)
    assert np.array_equal(called["x"], X) and called["link"] == "logit" and called["n_groups"] == 3


def test_y_none_leaves_the_observed_site_latent_and_a_required_none_is_passed():
    bound = calls.bind(recorder, (X, GROUP, 3), {"y": None}, "model")
    assert "y" not in bound.data and bound.nones == ()
    called = calls.calling(recorder, bound.form, bound.nones)(bound.data, bound.params)
    assert called["y"] is None

    def required(x, y):
        return y

    bound = calls.bind(required, (X, None), None, "model")
    assert bound.nones == ("y",) and calls.calling(required, bound.form, bound.nones)(bound.data, {}) is None


def test_torch_tensors_jax_arrays_and_pandas_columns_are_taken_as_given():
    import jax.numpy as jnp
    import torch

    frame = pd.DataFrame({"x": X, "group": GROUP})
    bound = calls.bind(recorder, (torch.tensor(X), jnp.asarray(GROUP), 3), {"y": frame["x"]}, "model")
    assert np.allclose(bound.data["x"], X) and np.array_equal(bound.data["group"], GROUP)
    assert bound.data["x"].dtype == np.float64 and np.allclose(bound.data["y"], X)


def test_a_call_that_does_not_bind_names_the_parameters_what_was_given_and_the_closest_name():
    with pytest.raises(InputProblem) as raised:
        calls.bind(recorder, (X, GROUP, 3), {"yy": Y}, "numpyro model")
    (problem,) = raised.value.problems
    assert "recorder(x, group, n_groups, y=None, *, link='identity')" in problem
    assert "3 positional argument(s) and keyword(s) yy" in problem and "did you mean 'y'?" in problem


def test_a_dataframe_passes_its_columns_as_keyword_arguments():
    frame = pd.DataFrame({"x": X, "group": GROUP, "n_groups": 3, "y": Y})
    bound = calls.resolve(recorder, frame, None, None, "model")
    assert bound.form == calls.CALL_FORM and np.array_equal(bound.data["group"], GROUP)


def test_a_label_column_is_refused_naming_how_to_code_it():
    frame = pd.DataFrame({"x": X, "group": np.array(list("abc" * 4)), "n_groups": 3})
    with pytest.raises(InputProblem, match=r"'group' is not numeric.*pandas\.factorize"):
        calls.resolve(recorder, frame, None, None, "model")


@pytest.mark.parametrize("data", [[X, GROUP, 3], (X, GROUP, 3), X])
def test_a_list_tuple_or_array_as_data_names_args(data):
    with pytest.raises(InputProblem, match=r"pass the model's positional arguments as args=\(\.\.\.\)"):
        calls.resolve(recorder, data, None, None, "model")


def test_a_dict_is_keyword_arguments_when_it_names_the_parameters_else_the_data_forms_dict():
    def data_model(data):
        return data

    assert calls.resolve(recorder, {"x": X, "group": GROUP, "n_groups": 3}, None, None, "m").form == "call"
    bound = calls.resolve(data_model, {"x": X, "group": GROUP}, None, None, "m")
    assert bound.form == calls.DATA_FORM and sorted(bound.data) == ["group", "x"]
    assert calls.bind(data_model, ({"x": X},), None, "m").form == calls.DATA_FORM  # args=(data,)


def test_a_data_function_may_return_args_and_kwargs(tmp_path):
    file = tmp_path / "data.py"
    file.write_text(
        "import numpy as np\n\ndef load():\n    return (np.ones(3), np.zeros(3, int), 1), {'y': None}\n"
    )
    bound = calls.resolve(recorder, f"{file}:load", None, None, "model")
    assert bound.form == calls.CALL_FORM and bound.data["n_groups"] == 1 and "y" not in bound.data


def test_npz_and_json_files_give_keyword_arguments(tmp_path):
    np.savez(tmp_path / "d.npz", x=X, group=GROUP, n_groups=3)
    (tmp_path / "d.json").write_text('{"x": [1.0, 2.0], "group": [0, 1], "n_groups": 2, "y": null}')
    assert calls.resolve(recorder, str(tmp_path / "d.npz"), None, None, "m").data["n_groups"] == 3
    assert calls.resolve(recorder, str(tmp_path / "d.json"), None, None, "m").form == calls.CALL_FORM


def test_the_usual_signature_is_checked_in_the_call_form(tmp_path):
    """``model(x, group, n_groups, y=None)`` (refused before as "takes 3 arguments") traces with its
    latent sites and its observed y."""
    from ppl_suite import registry

    user, backends = prepare(
        None,
        None,
        numpyro=numpyro_model,
        args=(X, GROUP, 3),
        kwargs={"y": Y},
        data_file=tmp_path / "data.npz",
    )
    assert user.form == calls.CALL_FORM and backends == ["numpyro"]
    sites = {site.name: site.shape for site in registry.get(user.name).sites({})}
    assert sites == {"a": (3,), "b": ()}


def test_a_function_defined_outside_an_importable_module_is_kept_in_this_process_by_content():
    def make(scale):
        def model(x):
            return x * scale

        return model

    one, two = sources.function_text(make(1.0)), sources.function_text(make(2.0))
    assert sources.in_process(one) and one != two  # the captured value is part of the content
    assert sources.load_function(one, "model")(2.0) == 2.0
    assert sources.in_process(sources.function_text(lambda x: x))
    assert sources.function_text(textwrap.dedent) == f"{textwrap.__file__}:dedent"


def test_a_kept_functions_text_from_another_process_is_refused_naming_the_fix():
    with pytest.raises(InputProblem, match=r"call ppl_suite\.check with it in this process"):
        sources.load_function("<in-process model sha256:0123456789abcdef>:model", "model")


@pytest.mark.parametrize("option", [{"backend": "pyro"}, {"backends": ["pyro"]}])
def test_a_pyro_backend_without_a_pyro_model_is_an_input_problem(tmp_path, option):
    with pytest.raises(InputProblem, match="backend 'pyro' fits a pyro model, and only a numpyro model"):
        check(numpyro=numpyro_model, args=(X, GROUP, 3), kwargs={"y": Y}, out=tmp_path / "r", **option)
    assert not (tmp_path / "r").exists()


def test_a_misspelt_guide_or_backend_names_the_closest_valid_one(tmp_path):
    with pytest.raises(InputProblem) as raised:
        check(
            numpyro=numpyro_model,
            args=(X, GROUP, 3),
            guides=["mean_feild"],
            backend="numpyr",
            out=tmp_path / "r",
        )
    found = " ".join(raised.value.problems)
    assert "did you mean 'mean_field'?" in found and "did you mean 'numpyro'?" in found


def test_draws_of_a_failed_cell_say_it_failed_and_why(tmp_path):
    result = CheckResult(tmp_path, 1, "m")
    result.__dict__["rows"] = pd.DataFrame(
        {
            "key": ["m/numpyro/mean_field/0"],
            "status": ["failed"],
            "error": ["Traceback...\nValueError: nan loss"],
        }
    )
    with pytest.raises(InputProblem, match="cell 'm/numpyro/mean_field/0' failed: ValueError: nan loss"):
        result.draws("m/numpyro/mean_field/0")
    with pytest.raises(InputProblem, match="did you mean 'm/numpyro/mean_field/0'"):
        result.draws("m/numpyro/mean_field/1")


def test_a_kept_models_content_enters_its_references_key(tmp_path):
    """Two closures of one name and one data set, differing only in a captured prior scale, have
    different reference keys (a notebook's model has no source file to hash)."""
    from ppl_suite.references.cache import model_source_hash

    def make(scale):
        def model(x=None):
            import numpyro
            import numpyro.distributions as dist

            z = numpyro.sample("z", dist.Normal(0.0, scale))
            with numpyro.plate("data", 12):
                numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

        return model

    hashes = []
    for scale in (1.0, 2.0):
        user, _ = prepare(
            None, None, numpyro=make(scale), kwargs={"x": X}, name="kept", data_file=tmp_path / "d.npz"
        )
        hashes.append(model_source_hash(user.name))
    assert hashes[0] != hashes[1]


SPAWNING_SCRIPT = """
import multiprocessing, time
from ppl_suite.checking.main_module import not_rerun_by_workers
print("script ran", flush=True)
with not_rerun_by_workers():
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    process.start()
process.join()
print("worker exit code", process.exitcode, flush=True)
"""


@pytest.mark.parametrize("as_module", [False, True])
def test_a_worker_spawned_by_a_script_without_a_main_guard_does_not_run_the_script_again(tmp_path, as_module):
    """A plain script (no ``if __name__ == "__main__":``), run by path or with ``python -m``, starts a
    spawned worker as a check does: the worker does not run the script again (it would print twice and
    fail starting its own worker)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text(SPAWNING_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "plain"] if as_module else [sys.executable, str(script)]
    process = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert process.stdout.count("script ran") == 1 and "worker exit code 0" in process.stdout


def test_a_pyro_model_with_float_priors_traces_against_float64_arguments(tmp_path):
    """Pyro's priors of Python floats are float32 under torch's default dtype; the suite runs Pyro in
    float64, and so traces it: ``X @ w`` with a float64 X works."""
    import pyro
    import pyro.distributions as dist

    def model(X, y=None):
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        pyro.sample("y", dist.Normal(X @ w, 0.5).to_event(1), obs=y)

    import torch

    design = np.column_stack([np.ones(12), X])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # a user's fresh process
    try:
        user, backends = prepare(None, None, pyro=model, args=(design, Y), data_file=tmp_path / "d.npz")
        assert torch.get_default_dtype() == torch.float32  # the user's setting is left as it was
    finally:
        torch.set_default_dtype(previous)
    assert backends == ["pyro"] and user.form == calls.CALL_FORM


def test_one_array_as_args_is_refused_naming_the_tuple():
    with pytest.raises(InputProblem, match=r"args is a ndarray: args is the tuple of positional arguments"):
        calls.bind(recorder, X, None, "model")


def test_a_script_named_like_a_shipped_model_gets_its_own_name(tmp_path):
    from ppl_suite.checking.api import _name

    script = tmp_path / "eight_schools_centered.py"
    script.write_text("def model(J, sigma, y=None):\n    pass\n")
    assert _name({"numpyro": f"{script}:model"}) == "eight_schools_centered_user"
    assert _name({"numpyro": f"{tmp_path / 'my_schools.py'}:model"}) == "my_schools"


def test_a_script_naming_its_own_file_is_not_run_again(tmp_path, monkeypatch):
    """``ppl_suite.check(f"{__file__}:model")`` in a script without a main guard: the model is taken
    from the running ``__main__`` module and kept in this process; the file is never imported (here
    importing it would raise)."""
    import types

    script = tmp_path / "script.py"
    script.write_text("raise RuntimeError('the script ran again')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    exec("def model(y=None):\n    return y\n", vars(main))
    monkeypatch.setitem(sys.modules, "__main__", main)
    text = model_text(f"{script}:model", "model")
    assert sources.in_process(text) and sources.load_function(text, "model") is main.model
    assert sources.import_file(script) is main


def test_a_script_read_from_standard_input_is_hashed_by_its_functions_content(monkeypatch):
    """``python - < script.py`` names its ``__main__`` file ``'<stdin>'``: no file to hash (it was a
    FileNotFoundError); the model's function is kept in this process and keyed by its content."""
    import types

    from ppl_suite import store

    main = types.ModuleType("__main__")
    main.__file__ = "<stdin>"
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(store, "_module_files", {})
    assert store._find_module_file("__main__") is None
    assert store.source_hash(("__main__",)) == store.source_hash(())


def test_the_python_apis_messages_name_parameters_and_the_command_lines_name_flags(tmp_path, capsys):
    from ppl_suite import cli

    with pytest.raises(InputProblem) as raised:
        check(numpyro=numpyro_model, args=(X, GROUP, 3), name="a/b", backend="pyro", out=tmp_path / "r")
    found = " ".join(raised.value.problems)
    assert "name= 'a/b'" in found and "as pyro=," in found and "backends=['numpyro']" in found
    assert "--" not in found
    model = tmp_path / "model.py"
    model.write_text("import numpyro\n\ndef model(y=None):\n    pass\n")
    np.savez(tmp_path / "data.npz", y=np.zeros(2))
    argv = ["check", "--numpyro", f"{model}:model", "--data", str(tmp_path / "data.npz"), "--name", "a/b",
            "--backends", "pyro", "--out", str(tmp_path / "r")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "--name 'a/b'" in err and "as --pyro," in err and "--backends numpyro" in err and "name=" not in err
    )


def test_a_guide_defined_in_this_process_is_named_in_messages_as_the_user_wrote_it(tmp_path):
    def guide(x, group, n_groups, y=None):
        import numpyro
        import numpyro.distributions as dist

        numpyro.sample("aa", dist.Normal(0.0, 1.0).expand([n_groups]).to_event(1))

    with pytest.raises(InputProblem) as raised:
        check(numpyro=numpyro_model, args=(X, GROUP, 3), kwargs={"y": Y}, guides=[guide], out=tmp_path / "r")
    found = " ".join(raised.value.problems)
    assert ".guide (defined in this process)" in found and "sha256" not in found


def test_a_model_kept_in_this_process_runs_its_cells_here_and_says_no_timeout_holds(tmp_path):
    from ppl_suite.checking.api import IN_PROCESS, _plan

    def model(x=None):
        import numpyro
        import numpyro.distributions as dist

        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0).expand([12]).to_event(1), obs=x)

    user, backends = prepare(None, None, numpyro=model, kwargs={"x": X}, data_file=tmp_path / "d.npz")
    options = dict(seeds=[0], steps=None, estimators=None, jobs=None, fresh=False)
    _, plan = _plan(user, backends, tmp_path / "r", False, options)
    assert plan.executor == IN_PROCESS == "in_process" and plan.jobs == 1 and plan.plugins == []


def test_a_misspelt_name_the_model_reads_from_its_data_names_the_closest(tmp_path):
    def model(data):
        import numpyro
        import numpyro.distributions as dist

        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0).expand([12]).to_event(1), obs=data["yy"])

    with pytest.raises(InputProblem, match=r"reads data 'yy' \(did you mean 'y'\?\)"):
        prepare(None, None, numpyro=model, args=({"y": Y},), data_file=tmp_path / "d.npz")
