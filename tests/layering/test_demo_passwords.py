"""One pattern for demo passwords (`reluth-demo-<username>`) in the README, `reluth users demo`
and `reluth demo`, so that whoever follows the README can log in (issue 17, usability)."""

from __future__ import annotations

import re
from pathlib import Path

from reluth.auth.cli import DEMO_ACCOUNTS, demo_password
from reluth.simulation.replay import DemoAccount

README = Path(__file__).resolve().parents[2] / "README.md"
#: "`user` / `password`" as the README writes a login (a password names "demo" or "pass")
LOGIN = re.compile(r"`([a-z0-9_.-]+)`\s*/\s*`([^`]*(?:demo|pass)[^`]*)`")


def test_readme_logins_follow_the_demo_pattern() -> None:
    logins = LOGIN.findall(README.read_text(encoding="utf-8"))
    assert logins, "the README names at least one demo login"
    wrong = [(u, p) for u, p in logins if p != f"reluth-demo-{u}"]
    assert not wrong, f"README logins not following reluth-demo-<username>: {wrong}"


def test_users_demo_and_demo_share_the_pattern() -> None:
    for role, username in DEMO_ACCOUNTS.items():
        assert demo_password(username) == DemoAccount(username, role, ()).password
        assert demo_password(username) == f"reluth-demo-{username}"
