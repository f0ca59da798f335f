"""What keys a checked model's reference and cells: its own code and the user's modules it imports,
not the rest of the script defining it; a model in a package module with relative imports works.
Nothing here fits a model (fast)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from ppl_suite import store
from ppl_suite.checking import sources
from ppl_suite.checking.api import prepare
from ppl_suite.errors import InputProblem
from ppl_suite.references.cache import model_source_hash

X = np.random.default_rng(0).normal(size=8)

MODEL = """
import numpyro
import numpyro.distributions as dist
{imports}

# a comment the user edits
steps = 100


def model(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, {scale}))
    with numpyro.plate("data", 8):
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)
"""


def keys(name: str) -> tuple[str, str]:
    """(the reference's model source hash, the cells' code hash) as a fresh process computes them."""
    store.source_hash.cache_clear()
    store._source.cache_clear()
    store.code_hash.cache_clear()
    return model_source_hash(name), store.code_hash(name, "mean_field")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A folder on sys.path (as a script's own folder is), whose modules are forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(store, "_module_files", {})  # each test's __main__ is another file
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def script_main(folder: Path, monkeypatch, text: str) -> types.ModuleType:
    """A ``__main__`` module run from ``folder/script.py`` holding ``text``."""
    script = folder / "script.py"
    script.write_text(text)
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    exec(compile(text, str(script), "exec"), vars(main))
    monkeypatch.setitem(sys.modules, "__main__", main)
    return main


def test_editing_a_comment_of_a_script_keeps_its_models_reference_key_and_cell_digests(folder, monkeypatch):
    main = script_main(folder, monkeypatch, MODEL.format(imports="", scale="1.0"))
    prepare(None, None, numpyro=main.model, kwargs={"x": X}, name="scripted", data_file=folder / "d.npz")
    before = keys("scripted")
    (folder / "script.py").write_text(
        MODEL.format(imports="", scale="1.0").replace("the user edits", "edited")
    )
    assert keys("scripted") == before


def test_a_helper_module_beside_a_script_enters_its_kept_models_keys(folder, monkeypatch):
    (folder / "priors_of_script.py").write_text("SCALE = 1.0\n")
    text = MODEL.format(imports="from priors_of_script import SCALE", scale="SCALE")
    main = script_main(folder, monkeypatch, text)
    prepare(None, None, numpyro=main.model, kwargs={"x": X}, name="scripted", data_file=folder / "d.npz")
    before = keys("scripted")
    (folder / "priors_of_script.py").write_text("SCALE = 2.0  # edited\n")
    after = keys("scripted")
    assert after[0] != before[0] and after[1] != before[1]


def test_a_helper_module_beside_a_model_file_enters_its_keys(folder):
    (folder / "priors_of_file.py").write_text("SCALE = 1.0\n")
    (folder / "model_file.py").write_text(
        MODEL.format(imports="from priors_of_file import SCALE", scale="SCALE")
    )
    model = f"{folder / 'model_file.py'}:model"
    prepare(None, None, numpyro=model, kwargs={"x": X}, name="from_file", data_file=folder / "d.npz")
    before = keys("from_file")
    (folder / "priors_of_file.py").write_text("SCALE = 2.0  # edited\n")
    after = keys("from_file")
    assert after[0] != before[0] and after[1] != before[1]


def test_a_model_in_a_package_module_with_relative_imports_is_imported_by_its_name(folder):
    package = folder / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "util.py").write_text("SCALE = 1.0\n")
    (package / "models.py").write_text(MODEL.format(imports="from .util import SCALE", scale="SCALE"))
    text = f"{package / 'models.py'}:model"
    user, _ = prepare(None, None, numpyro=text, kwargs={"x": X}, name="packaged", data_file=folder / "d.npz")
    assert sources.load_function(user.numpyro, "model").__module__ == "userpkg.models"
    import userpkg.models

    assert sources.function_text(userpkg.models.model) == text  # a function given as such too
    before = keys("packaged")
    (package / "util.py").write_text("SCALE = 2.0  # edited\n")
    assert keys("packaged")[1] != before[1]


def test_a_package_module_not_on_sys_path_is_refused_naming_the_fix(tmp_path):
    package = tmp_path / "elsewhere"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("from .util import SCALE\n")
    with pytest.raises(InputProblem, match=r"add the folder holding its package to sys\.path"):
        prepare(
            None, None, numpyro=f"{package / 'models.py'}:model", kwargs={"x": X}, data_file=tmp_path / "d"
        )
