"""The rule registry: built-ins, entry-point plugins (fake dist-info), and every failure mode."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from wiring._typing import FloatArray
from wiring.errors import (
    RuleContractError,
    RuleLoadError,
    RuleNotFoundError,
    StoreMismatchError,
    WiringWarning,
)
from wiring.rules import registry
from wiring.rules.base import Level, ParamSpec, SynapseModel
from wiring.rules.dso import DSO
from wiring.rules.registry import (
    BUILTIN_RULES,
    check_rule,
    get_rule,
    list_rules,
    refresh_rules,
    rule_from_identity,
    rule_identity,
    rule_provenance,
)

FAKE_MODULE = '''
import numpy as np
from wiring.rules.base import ParamSpec

class FakeOK:
    """A fake rule for registry tests."""
    name = "fake_ok"
    params = (ParamSpec(name="theta", default=1.0, low=0.0, high=2.0, doc="scale"),)
    level = "voxel"
    features = ("log_pre",)
    synapses = "poisson"
    def rate(self, features, theta):
        return theta[0] * np.exp(features["log_pre"])

class FakeDup(FakeOK):
    name = "fake_dup"

class FakeShadow(FakeOK):
    name = "dso"
'''
OTHER_MODULE = """
from fake_rules_pkg import FakeOK

class FakeDup(FakeOK):
    name = "fake_dup"
"""
BOOM_MODULE = 'raise RuntimeError("plugin import exploded")\n'


def _dist(site: Path, name: str, version: str, entry_points: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[wiring.rules]\n" + entry_points)


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory with three fake distributions advertising wiring rules."""
    site = tmp_path_factory.mktemp("site")
    (site / "fake_rules_pkg.py").write_text(FAKE_MODULE)
    (site / "other_rules_pkg.py").write_text(OTHER_MODULE)
    (site / "boom_rules_pkg.py").write_text(BOOM_MODULE)
    _dist(
        site,
        "fake-rules",
        "0.1",
        "fake_ok = fake_rules_pkg:FakeOK\n"
        "fake_dup = fake_rules_pkg:FakeDup\n"
        "fake_missing = fake_rules_missing_module:Nope\n"
        "fake_misnamed = fake_rules_pkg:FakeOK\n",
    )
    _dist(site, "other-rules", "0.2", "fake_dup = other_rules_pkg:FakeDup\n")
    _dist(site, "boom-rules", "1.0", "fake_boom = boom_rules_pkg:Anything\n")
    return site


@pytest.fixture
def plugins(rule_plugins: Callable[..., None], fake_site: Path) -> Path:
    """The fake distributions on sys.path (the registry is refreshed around every test)."""
    rule_plugins(site=fake_site, modules=["fake_rules_pkg", "other_rules_pkg", "boom_rules_pkg"])
    return fake_site


# -- built-ins ----------------------------------------------------------------------------------


def test_builtins_listed_with_provenance() -> None:
    infos = {i.name: i for i in list_rules()}
    version = metadata.version("wiring-sbi")
    for name in BUILTIN_RULES:
        assert infos[name].status == "ok"
        assert infos[name].distribution == "wiring-sbi"
        assert infos[name].version == version
        assert infos[name].params == get_rule(name).params
        assert infos[name].summary
        assert rule_provenance(name) == {
            "name": name,
            "distribution": "wiring-sbi",
            "version": version,
        }
    assert [i.name for i in list_rules()] == sorted(infos)


def test_get_rule_accepts_name_class_and_instance() -> None:
    by_name = get_rule("dso")
    assert isinstance(by_name, DSO)
    assert isinstance(get_rule(DSO), DSO)
    inst = DSO()
    assert get_rule(inst) is inst
    assert rule_provenance(DSO)["distribution"] == "wiring-sbi"
    assert rule_provenance(inst)["distribution"] == "wiring-sbi"


def test_unknown_name_lists_rules_and_suggests() -> None:
    with pytest.raises(RuleNotFoundError, match=r"did you mean 'dso'\?") as info:
        get_rule("dsoo")
    msg = str(info.value)
    for name in BUILTIN_RULES:
        assert name in msg
    assert "wiring rules list" in msg
    assert isinstance(info.value, LookupError)


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(RuleNotFoundError) as info:
        get_rule("completely_different_xyz")
    assert "did you mean" not in str(info.value)


def test_builtin_import_is_lazy() -> None:
    code = (
        "import sys; import wiring.rules.registry as r; "
        "assert 'wiring.rules.peters_synapse' not in sys.modules; r.get_rule('dso'); "
        "assert 'wiring.rules.peters_synapse' not in sys.modules"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


# -- plugins through fake dist-info -------------------------------------------------------------


def test_plugin_found_with_distribution_and_version(plugins: Path) -> None:
    rule = get_rule("fake_ok")
    assert type(rule).__name__ == "FakeOK"
    assert rule_provenance("fake_ok") == {
        "name": "fake_ok",
        "distribution": "fake-rules",
        "version": "0.1",
    }
    assert rule_provenance(rule)["distribution"] == "fake-rules"


def test_discovery_does_not_import_plugins(plugins: Path) -> None:
    get_rule("dso")
    assert "fake_rules_pkg" not in sys.modules
    assert "boom_rules_pkg" not in sys.modules
    get_rule("fake_ok")
    assert "fake_rules_pkg" in sys.modules
    assert "boom_rules_pkg" not in sys.modules


def test_broken_plugin_skipped_with_warning_in_listing(plugins: Path) -> None:
    with pytest.warns(WiringWarning) as record:
        infos = list_rules()
    names = {i.name for i in infos}
    assert "fake_ok" in names and "dso" in names
    for bad in ("fake_missing", "fake_boom", "fake_dup", "fake_misnamed"):
        assert bad not in names
        assert any(bad in str(w.message) for w in record), bad
    assert all(i.status == "ok" for i in infos)


def test_broken_plugin_reported_with_include_broken(plugins: Path) -> None:
    infos = list_rules(include_broken=True)  # no warning (warnings are errors in this suite)
    broken = {i.name: i for i in infos if i.status == "broken"}
    assert set(broken) == {"fake_missing", "fake_boom", "fake_dup", "fake_misnamed"}
    assert "fake_rules_missing_module" in (broken["fake_missing"].error or "")
    assert broken["fake_boom"].distribution == "boom-rules"
    assert broken["fake_boom"].to_dict()["status"] == "broken"


def test_get_broken_plugin_raises_chained(plugins: Path) -> None:
    with pytest.raises(RuleLoadError, match=r"boom-rules 1\.0") as info:
        get_rule("fake_boom")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "plugin import exploded" in str(info.value)
    with pytest.raises(RuleLoadError, match="fake_rules_missing_module") as info2:
        get_rule("fake_missing")
    assert isinstance(info2.value.__cause__, ModuleNotFoundError)
    assert isinstance(info2.value, ImportError)


def test_duplicate_name_names_both_distributions(plugins: Path) -> None:
    with pytest.raises(RuleLoadError) as info:
        get_rule("fake_dup")
    msg = str(info.value)
    assert "fake-rules 0.1" in msg and "other-rules 0.2" in msg
    assert "install order" in msg


def test_duplicate_error_does_not_depend_on_path_order(
    monkeypatch: pytest.MonkeyPatch, fake_site: Path, tmp_path: Path
) -> None:
    # the same two distributions, found in the opposite order on sys.path
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for d in fake_site.iterdir():
        target = second if d.name.startswith("fake_rules") else first
        (target / d.name).symlink_to(d)
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    refresh_rules()
    with pytest.raises(RuleLoadError) as info:
        get_rule("fake_dup")
    monkeypatch.undo()
    refresh_rules()
    with pytest.raises(RuleLoadError) as info_ref:
        monkeypatch.syspath_prepend(str(fake_site))
        get_rule("fake_dup")
    assert str(info.value) == str(info_ref.value)
    for mod in ("fake_rules_pkg", "other_rules_pkg"):
        sys.modules.pop(mod, None)


def test_entry_point_name_must_equal_rule_name(plugins: Path) -> None:
    with pytest.raises(RuleContractError, match=r"entry point 'fake_misnamed'.*'fake_ok'"):
        get_rule("fake_misnamed")


def test_plugin_may_not_shadow_a_builtin(monkeypatch: pytest.MonkeyPatch, plugins: Path) -> None:
    ep = metadata.EntryPoint(name="dso", value="fake_rules_pkg:FakeShadow", group="wiring.rules")
    monkeypatch.setattr(registry, "_entry_points", lambda: [ep])
    refresh_rules()
    with pytest.raises(RuleLoadError, match=r"wiring-sbi .* and unknown distribution"):
        get_rule("dso")


def test_refresh_rules_rereads_installed_plugins(
    monkeypatch: pytest.MonkeyPatch, fake_site: Path
) -> None:
    assert "fake_ok" not in {i.name for i in list_rules()}
    monkeypatch.syspath_prepend(str(fake_site))
    with pytest.raises(RuleNotFoundError):  # cached discovery: not seen yet
        get_rule("fake_ok")
    refresh_rules()
    assert get_rule("fake_ok").name == "fake_ok"
    sys.modules.pop("fake_rules_pkg", None)


# -- plugins as EntryPoint objects ------------------------------------------------------------


def test_entry_point_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        metadata.EntryPoint(name="ep_dso", value="wiring.rules.dso:DSO", group="wiring.rules"),
        metadata.EntryPoint(name="ep_bad", value="no_such_module_xyz:Rule", group="wiring.rules"),
        metadata.EntryPoint(name="ep_func", value="math:sqrt", group="wiring.rules"),
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    refresh_rules()
    with pytest.raises(RuleContractError, match=r"'ep_dso'.*'dso'"):
        get_rule("ep_dso")
    with pytest.raises(RuleLoadError, match="unknown distribution") as info:
        get_rule("ep_bad")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(RuleContractError, match="must point at a class"):
        get_rule("ep_func")
    with pytest.warns(WiringWarning):
        names = [i.name for i in list_rules()]
    assert names == sorted(BUILTIN_RULES)


# -- check_rule ---------------------------------------------------------------------------------


class _Good:
    name: ClassVar[str] = "good_rule"
    params: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(name="theta", default=1.0, low=0.0, high=2.0, doc="scale"),
    )
    level: ClassVar[Level] = "voxel"
    features: ClassVar[tuple[str, ...]] = ("log_pre",)
    synapses: ClassVar[SynapseModel] = "poisson"

    def rate(self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]) -> FloatArray:
        return np.asarray(theta[0] * np.exp(features["log_pre"]), dtype=np.float64)


def _variant(**attrs: Any) -> type:
    return type("Variant", (_Good,), attrs)


def test_check_rule_accepts_good_rule() -> None:
    check_rule(_Good)
    check_rule(_Good())
    assert get_rule(_Good).name == "good_rule"
    prov = rule_provenance(_Good)
    assert prov["name"] == "good_rule" and prov["distribution"] is None


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": "GoodRule"}, "snake_case"),
        ({"name": None}, "snake_case"),
        ({"params": ()}, "at least one parameter"),
        ({"params": [ParamSpec(name="t", default=0, low=0, high=1)]}, "tuple of"),
        (
            {"params": (ParamSpec(name="t", default=0, low=0, high=1),) * 2},
            "unique, repeated: \\['t'\\]",
        ),
        ({"level": "neuron"}, "level must be one of \\['voxel', 'pair'\\], got 'neuron'"),
        ({"synapses": "gamma"}, "synapses must be one of"),
        ({"level": "pair", "features": ("n_shared",), "synapses": "binomial"}, "needs level"),
        ({"features": ("log_pree",)}, "\\['log_pree'\\] are not available"),
        ({"level": "pair", "features": ("log_pre",)}, "not available at level 'pair'"),
        ({"features": ()}, "non-empty tuple"),
        ({"rate": lambda self, features, *theta: 0}, "must not take \\*args or \\*\\*kwargs"),
        ({"rate": lambda self, features, theta, **kw: 0}, "must not take"),
        ({"rate": lambda self, features, theta, scale=1.0: 0}, "exactly \\(features, theta\\)"),
        ({"rate": None}, "rate\\(features, theta\\) method is missing"),
        ({"__init__": lambda self, scale: None}, "instantiate without arguments"),
    ],
)
def test_check_rule_rejects(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleContractError, match=message) as info:
        check_rule(_variant(**attrs))
    assert "Variant" in str(info.value)  # names the offending class
    with pytest.raises(RuleContractError):
        get_rule(_variant(**attrs))


def test_check_rule_lists_every_problem() -> None:
    with pytest.raises(RuleContractError) as info:
        check_rule(_variant(name="Bad", level="x", synapses="y"))
    msg = str(info.value)
    assert "snake_case" in msg and "level must" in msg and "synapses must" in msg


def test_voxel_rule_may_read_pair_features() -> None:
    check_rule(_variant(features=("log_pre", "soma_distance_um", "n_shared")))


def test_get_rule_rejects_non_rules() -> None:
    with pytest.raises(RuleContractError):
        get_rule(42)  # type: ignore[arg-type]


# -- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_RULES))
def test_identity_roundtrip(name: str) -> None:
    ident = rule_identity(name)
    assert type(rule_from_identity(ident)) is type(get_rule(name))


def test_identity_mismatch_is_an_error() -> None:
    ident = rule_identity("dso")
    ident["params"][0]["high"] = 3.0
    with pytest.raises(StoreMismatchError, match=r"theta_pre.*install the version"):
        rule_from_identity(ident)
    ident = rule_identity("dso")
    ident["params"] = ident["params"][:2]
    with pytest.raises(StoreMismatchError, match="recorded \\['theta_pre', 'theta_post'\\]"):
        rule_from_identity(ident)
    with pytest.raises(StoreMismatchError, match="keys 'name' and 'params'"):
        rule_from_identity({"name": "dso"})
    with pytest.raises(RuleNotFoundError):
        rule_from_identity({"name": "nope_rule", "params": []})


def test_infinite_domain_survives_identity() -> None:
    ident = rule_identity("dso")
    assert ident["params"][0]["domain"] == [None, None]
    back = rule_from_identity(ident)
    assert math.isinf(back.params[0].domain[1])


def test_provenance_of_a_shadowing_class_is_not_the_builtin() -> None:
    class Impostor(_Good):
        name: ClassVar[str] = "dso"

    prov = rule_provenance(Impostor)
    assert prov["name"] == "dso"
    assert prov["distribution"] is None and prov["version"] is None


def test_provenance_by_name_of_unknown_rule_raises() -> None:
    with pytest.raises(RuleNotFoundError):
        rule_provenance("no_such_rule_abc")
