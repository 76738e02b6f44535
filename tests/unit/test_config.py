"""Settings: explicit arguments beat SUREFOOT_* variables, which beat defaults; bad values
are a ConfigError before anything runs."""

from __future__ import annotations

import dataclasses

import pytest

import surefoot as sf
from surefoot.config import CRASH_POINTS, DEFAULT_STORE_URL, Settings, from_environment
from surefoot.engine.crash import POINTS
from surefoot.errors import ConfigError


def test_no_environment_gives_the_defaults():
    assert from_environment({}) == Settings()
    assert Settings().store_url == DEFAULT_STORE_URL
    assert Settings().instant_retries is False


def test_every_setting_is_read_from_its_variable_with_its_type():
    settings = from_environment(
        {
            "SUREFOOT_STORE_URL": "sqlite:///other.db",
            "SUREFOOT_AUTO_MIGRATE": "false",
            "SUREFOOT_DEFAULT_QUEUE": "invoices",
            "SUREFOOT_LEASE_S": "12.5",
            "SUREFOOT_HEARTBEAT_S": "2",
            "SUREFOOT_POLL_INTERVAL_S": "0.05",
            "SUREFOOT_CONCURRENCY": "4",
            "SUREFOOT_DRAIN_TIMEOUT_S": "9",
            "SUREFOOT_MAX_DELIVERIES": "7",
            "SUREFOOT_INSTANT_RETRIES": "yes",
            "SUREFOOT_CRASH_AT": "step.before_commit@2",
        }
    )
    assert settings == Settings(
        store_url="sqlite:///other.db",
        auto_migrate=False,
        default_queue="invoices",
        lease_s=12.5,
        heartbeat_s=2.0,
        poll_interval_s=0.05,
        concurrency=4,
        drain_timeout_s=9.0,
        max_deliveries=7,
        instant_retries=True,
        crash_at="step.before_commit@2",
    )
    assert isinstance(settings.concurrency, int)
    assert isinstance(settings.lease_s, float)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_boolean_variables_accept_the_usual_spellings(raw, expected):
    assert from_environment({"SUREFOOT_INSTANT_RETRIES": raw}).instant_retries is expected


def test_explicit_value_beats_the_environment_which_beats_the_default():
    env = {"SUREFOOT_CONCURRENCY": "3", "SUREFOOT_LEASE_S": "40"}
    settings = from_environment(env, concurrency=5)
    assert settings.concurrency == 5
    assert settings.lease_s == 40.0
    assert settings.heartbeat_s == Settings().heartbeat_s


def test_explicit_none_falls_back_to_the_environment():
    assert from_environment({"SUREFOOT_CONCURRENCY": "3"}, concurrency=None).concurrency == 3


def test_variables_that_are_not_settings_are_ignored():
    assert from_environment({"SUREFOOT_NOT_A_SETTING": "x", "OTHER": "y"}) == Settings()


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("SUREFOOT_CONCURRENCY", "four", "SUREFOOT_CONCURRENCY='four' is not an integer"),
        ("SUREFOOT_CONCURRENCY", "4.5", "is not an integer"),
        ("SUREFOOT_MAX_DELIVERIES", "", "is not an integer"),
        ("SUREFOOT_LEASE_S", "soon", "SUREFOOT_LEASE_S='soon' is not a number"),
        ("SUREFOOT_AUTO_MIGRATE", "maybe", "SUREFOOT_AUTO_MIGRATE='maybe' is not a boolean"),
        ("SUREFOOT_INSTANT_RETRIES", "2", "is not a boolean"),
    ],
)
def test_unparseable_variable_is_a_config_error_naming_it(name, raw, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        from_environment({name: raw})


@pytest.mark.parametrize(
    "overrides",
    [
        {"lease_s": 0.0},
        {"lease_s": -1.0},
        {"heartbeat_s": 0.0},
        {"poll_interval_s": -0.1},
        {"concurrency": 0},
        {"max_deliveries": 0},
        {"quick_step_s": -0.001},
        {"quick_step_s": 1.5},
    ],
)
def test_out_of_range_values_are_config_errors(overrides):
    with pytest.raises(ConfigError):
        Settings(**overrides)


@pytest.mark.parametrize(("lease_s", "heartbeat_s"), [(10.0, 10.0), (10.0, 15.0)])
def test_heartbeat_must_be_shorter_than_the_lease(lease_s, heartbeat_s):
    with pytest.raises(ConfigError, match=r"heartbeat_s .* must be shorter than lease_s"):
        Settings(lease_s=lease_s, heartbeat_s=heartbeat_s)


def test_heartbeat_from_the_environment_longer_than_the_default_lease_is_refused():
    with pytest.raises(ConfigError, match="heartbeat_s"):
        from_environment({"SUREFOOT_HEARTBEAT_S": "45"})


def test_heartbeat_check_uses_the_merged_values_not_each_source_alone():
    settings = from_environment({"SUREFOOT_HEARTBEAT_S": "45"}, lease_s=90.0)
    assert (settings.lease_s, settings.heartbeat_s) == (90.0, 45.0)


@pytest.mark.parametrize(
    "env",
    [
        {"SUREFOOT_LEASE_S": "nan"},
        {"SUREFOOT_LEASE_S": "inf"},
        {"SUREFOOT_HEARTBEAT_S": "nan"},
        {"SUREFOOT_POLL_INTERVAL_S": "nan"},
    ],
)
def test_non_finite_durations_are_refused(env):
    with pytest.raises(ConfigError):
        from_environment(env)


def test_negative_drain_timeout_is_refused():
    with pytest.raises(ConfigError, match="drain_timeout_s"):
        Settings(drain_timeout_s=-1.0)


def test_zero_drain_timeout_means_release_at_once_and_is_allowed():
    assert Settings(drain_timeout_s=0.0).drain_timeout_s == 0.0


@pytest.mark.parametrize("spec", ["step.before_commit", "wait.suspended@3"])
def test_known_crash_point_is_accepted(spec):
    assert from_environment({"SUREFOOT_CRASH_AT": spec}).crash_at == spec


@pytest.mark.parametrize(
    "spec", ["step.before_comit", "step.before_commit@0", "step.before_commit@x", "@2"]
)
def test_unknown_crash_point_or_bad_count_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="crash_at"):
        from_environment({"SUREFOOT_CRASH_AT": spec})


def test_settings_know_every_crash_point_the_engine_names():
    assert CRASH_POINTS == POINTS


@pytest.mark.parametrize(
    "overrides", [{"breaker_failure_threshold": 0}, {"breaker_cooldown_s": 0.0}]
)
def test_invalid_breaker_settings_are_config_errors(overrides):
    with pytest.raises(ConfigError, match="breaker"):
        Settings(**overrides)


def test_unknown_override_is_a_config_error_listing_the_known_settings():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\): leese_s .*known: .*lease_s"):
        Settings().with_overrides(leese_s=3.0)


def test_with_overrides_returns_a_new_object_and_ignores_none():
    base = Settings()
    changed = base.with_overrides(concurrency=2, lease_s=None)
    assert changed.concurrency == 2
    assert changed.lease_s == base.lease_s
    assert base.concurrency == Settings().concurrency


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().concurrency = 3  # type: ignore[misc]


def test_app_reads_the_environment_and_its_arguments_win(monkeypatch, tmp_path):
    monkeypatch.setenv("SUREFOOT_CONCURRENCY", "3")
    monkeypatch.setenv("SUREFOOT_POLL_INTERVAL_S", "0.5")
    monkeypatch.setenv("SUREFOOT_STORE_URL", "sqlite:///from-env.db")
    store = f"sqlite:///{tmp_path / 'explicit.db'}"
    app = sf.App("configured", store=store, poll_interval_s=0.1)
    assert app.settings.concurrency == 3
    assert app.settings.poll_interval_s == 0.1
    assert app.settings.store_url == store


def test_app_with_an_unknown_setting_fails_at_construction(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting"):
        sf.App("bad", store=f"sqlite:///{tmp_path / 'x.db'}", pol_interval_s=0.1)


def test_app_with_a_bad_environment_variable_fails_at_construction(monkeypatch):
    monkeypatch.setenv("SUREFOOT_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="SUREFOOT_CONCURRENCY"):
        sf.App("bad")


def test_quick_step_s_comes_from_the_environment_and_zero_is_allowed():
    assert from_environment({"SUREFOOT_QUICK_STEP_S": "0"}).quick_step_s == 0.0
    with pytest.raises(ConfigError, match="quick_step_s"):
        from_environment({"SUREFOOT_QUICK_STEP_S": "2"})
