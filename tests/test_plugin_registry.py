"""The one registry mechanism: every plug-in kind is a ``Registry``, found by discovery, entry points and
registration, with its capabilities declared (refused at registration when missing), never probed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import pytest

from ppl_suite import backends, estimators, executors, guides, registry
from ppl_suite.plugin_registry import Registry
from ppl_suite.references import reparametrized
from ppl_suite.report import document


@dataclass(frozen=True)
class Thing:
    name: str
    size: int = 1


def entry_point_package(tmp_path, monkeypatch, group: str, lines: dict[str, str], module: str) -> None:
    """An installed package (on ``sys.path``, with its dist-info) whose entry points of ``group`` are
    ``lines`` (name -> "module:attribute") and whose module ``fake_plugins`` is ``module``."""
    (tmp_path / "fake_plugins.py").write_text(module)
    info = tmp_path / "fake_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugins\nVersion: 0.1\n")
    entries = "".join(f"{name} = {target}\n" for name, target in lines.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{entries}")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()


def test_discovery_then_entry_points_then_registration_and_names_sorted(tmp_path, monkeypatch):
    entry_point_package(
        tmp_path,
        monkeypatch,
        "test.things",
        {"b": "fake_plugins:B", "broken": "fake_plugins:MISSING", "taken": "fake_plugins:TAKEN"},
        "from tests.test_plugin_registry import Thing\nB = Thing('b')\nTAKEN = Thing('c', 2)\n",
    )
    things = Registry("thing", discover=lambda: (Thing("c"), Thing("a")), entry_points="test.things")
    with pytest.warns(UserWarning) as warned:
        assert things.names() == ["a", "b", "c"]
    messages = " | ".join(str(w.message) for w in warned)
    assert "entry point 'broken'" in messages and "AttributeError" in messages
    assert "entry point 'taken'" in messages and "a thing named 'c' is already registered" in messages
    assert things.get("c") == Thing("c")  # the discovered one, not the entry point's
    things.register(Thing("d"))
    assert "d" in things and things.plugins()[-1] == Thing("d")


def test_a_taken_name_is_an_error_unless_replacing_a_registered_one():
    things = Registry("thing", discover=lambda: (Thing("shipped"),))
    mine = things.register(Thing("mine"))
    assert things.register(mine) is mine  # the same object again
    with pytest.raises(ValueError, match="a thing named 'mine' is already registered"):
        things.register(Thing("mine", 2))
    things.register(Thing("mine", 2), replace=True)
    assert things.get("mine").size == 2
    with pytest.raises(ValueError, match="already registered"):
        things.register(Thing("shipped", 2), replace=True)  # a discovered one is never replaced
    with pytest.raises(KeyError, match="unknown thing 'nope'; valid: mine, shipped"):
        things.get("nope")


def test_an_ordered_kind_keeps_registration_order_and_a_check_refuses_what_the_protocol_lacks():
    things = Registry("thing", check=lambda t: None if t.size > 0 else "size must be > 0", ordered=True)
    things.register(Thing("z"))
    things.register(Thing("a"))
    assert things.names() == ["z", "a"]
    with pytest.raises(ValueError, match="size must be > 0"):
        things.register(Thing("b", 0))
    copied = things.copy()
    copied.register(Thing("b"))
    assert "b" in copied and "b" not in things


def test_every_plugin_kind_is_a_registry():
    kinds = {
        "models": registry.MODELS,
        "estimators": estimators.ESTIMATORS,
        "guides": guides.FAMILIES,
        "backends": backends.BACKENDS,
        "executors": executors.EXECUTORS,
        "report sections": document.SECTIONS,
        "reference sources": reparametrized.SOURCES,
    }
    assert all(isinstance(kind, Registry) for kind in kinds.values())
    assert backends.names() == ["pyro", "numpyro", "handrolled"]  # the report's order
    assert executors.names() == ["local", "dask"]


def test_capabilities_are_declared_by_every_registered_plugin():
    registry.names()  # the models register their own guide families
    for name in guides.names():
        assert guides.get(name).elbo in guides.ELBOS, name
    for name in backends.names():
        backend = backends.info(name)
        assert backend.color and backend.line_style and "numpyro" in backend.implementations
    from ppl_suite.report import order

    for section in order.sections():
        assert isinstance(section.without_cells, bool)
        assert all(callable(getattr(section, name)) for name in ("headline", "summary", "cost"))


def test_a_guide_family_or_section_that_does_not_declare_its_capabilities_is_refused():
    class Undeclared:
        name = "undeclared"
        description = "declares no elbo"

    with pytest.raises(ValueError, match="declares elbo None; declare one of trace, trace_enum"):
        guides.FAMILIES.copy().register(Undeclared())

    @dataclass(frozen=True)
    class Bare:
        title: str = "bare"

    with pytest.raises(ValueError, match="does not declare without_cells, build, headline, summary, cost"):
        document.SECTIONS.copy().register(Bare())
