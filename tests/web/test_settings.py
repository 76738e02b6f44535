"""WebSettings: explicit values, then SUREFOOT_WEB_* variables, then defaults; nonsense
is a ConfigError naming the setting."""

from __future__ import annotations

import pytest

from surefoot.config import WebSettings, web_from_environment
from surefoot.domain.access import Role
from surefoot.errors import ConfigError
from surefoot.web.auth import oidc


def test_environment_variables_fill_what_arguments_leave_open():
    env = {
        "SUREFOOT_WEB_PORT": "9100",
        "SUREFOOT_WEB_SECURE_COOKIES": "yes",
        "SUREFOOT_WEB_SESSION_IDLE_S": "60",
        "SUREFOOT_WEB_OIDC_ISSUER": "https://login.example/tenant/v2.0",
        "SUREFOOT_WEB_OIDC_DEFAULT_ROLE": "operator",
    }
    settings = web_from_environment(env, port=9200)
    assert settings.port == 9200
    assert settings.secure_cookies is True
    assert settings.session_idle_s == 60.0
    assert settings.oidc_default_role is Role.OPERATOR
    assert not oidc.enabled(settings)  # no client id and secret yet
    both = web_from_environment(
        {**env, "SUREFOOT_WEB_OIDC_CLIENT_ID": "id", "SUREFOOT_WEB_OIDC_CLIENT_SECRET": "s"}
    )
    assert oidc.enabled(both)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SUREFOOT_WEB_PORT": "eighty"}, "SUREFOOT_WEB_PORT"),
        ({"SUREFOOT_WEB_INSECURE_NO_AUTH": "maybe"}, "SUREFOOT_WEB_INSECURE_NO_AUTH"),
        ({"SUREFOOT_WEB_SESSION_ABSOLUTE_S": "-1"}, "session_absolute_s"),
        ({"SUREFOOT_WEB_OIDC_DEFAULT_ROLE": "root"}, "oidc_default_role"),
    ],
)
def test_nonsense_is_refused_with_the_setting_named(env: dict[str, str], named: str):
    with pytest.raises(ConfigError, match=named):
        web_from_environment(env)


def test_auth_is_on_by_default():
    assert WebSettings().insecure_no_auth is False
