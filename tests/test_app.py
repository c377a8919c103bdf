"""The app's rules that need no browser: who may be served, and where each user's files go."""

from __future__ import annotations

import pytest


def test_auth_rules_and_user_workspaces(tmp_path):
    """Without a browser: who may be served, and where each user's files go."""
    from types import SimpleNamespace

    from workbench.app import is_loopback, parse_auth
    from workbench.app.common import user_settings
    from workbench.config import Settings
    from workbench.errors import ConfigError

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert parse_auth(None, "127.0.0.1", share=False) is None
    assert parse_auth("ana:secret", "0.0.0.0", share=True) == ("ana", "secret")
    for auth, host, share in ((None, "0.0.0.0", False), (None, "127.0.0.1", True), ("nopassword", "0.0.0.0", False)):
        with pytest.raises(ConfigError):
            parse_auth(auth, host, share)
    base = Settings(home=tmp_path)
    assert user_settings(base, SimpleNamespace(username="ana")).home == tmp_path / "users" / "ana"
    assert user_settings(base, SimpleNamespace(username="../../etc")).home == tmp_path / "users" / ".._.._etc"
    assert user_settings(base, None).home == tmp_path / "users" / "local"
    assert user_settings(base, SimpleNamespace(username="bo")).models == (tmp_path / "models").resolve()  # shared
