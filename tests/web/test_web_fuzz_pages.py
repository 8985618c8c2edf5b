"""Property-based fuzzing of the page forms (issue 13, item 5): every form the pages render, as
every role that sees it, posted with values at the edges — superscript and other Unicode
digits, thousands of digits, 1e999999, NaN, dates in year 1 or 9999 or on 30 February,
control characters, very long text — never gets a 5xx, on SQLite and on PostgreSQL.

The forms are discovered from the rendered pages (their action and field names), so a form
added later is fuzzed without touching this file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import (
    ROLE_USER,
    Site,
    app_routes,
    is_json_api,
    make_site,
    randomized_via_api,
    ready_patients,
    setup_randomization,
)

#: Values that gave 5xx before, and their neighbours.
EDGES = [
    "",
    "0",
    "-1",
    "¹⁹⁶⁰",
    "٣",
    "1" * 5000,
    "1e999999",
    "-1e-300",
    "NaN",
    "inf",
    "0001-01-01",
    "9999-12-31",
    "2025-02-30",
    "2025-03-12T25:61",
    "\x00",
    "a\x1bb",
    "x" * 3000,
    "=HYPERLINK(1)",
    "9" * 20,
    "2**63",
]
VALUES = st.one_of(st.sampled_from(EDGES), st.text(max_size=40))


class _Forms(HTMLParser):
    """The POST forms of a page: (action, {field: a value the page offers, or ''})."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._current: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._current = {}
            self.forms.append((a.get("action", ""), self._current))
        elif self._current is not None and tag in ("input", "select", "textarea"):
            name = a.get("name")
            if name and a.get("type") != "submit":
                self._current.setdefault(name, a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


@pytest.fixture(scope="module")
def fuzz_site(module_db_url: str) -> Iterator[Site]:
    s = make_site(module_db_url)
    yield s
    s.app.state.engine.dispose()


@pytest.fixture(scope="module")
def forms(fuzz_site: Site) -> list[tuple[str, str, dict[str, str]]]:
    """(username, action, fields) of every POST form on every page, as each role sees it."""
    setup_randomization(fuzz_site.app)
    ready = ready_patients(fuzz_site, 1, centres=("C01",), start=50)[0]
    randomized = randomized_via_api(fuzz_site)
    ids = {"code": randomized, "job": "none", "username": "nurse1", "name": "x"}
    pages = [
        path
        for method, path in app_routes(fuzz_site.app)
        if method == "GET" and not is_json_api(path) and not path.startswith("/static")
    ]
    found: dict[tuple[str, str], tuple[str, str, dict[str, str]]] = {}
    for username in ROLE_USER.values():
        client = fuzz_site.client(username)
        for template in pages:
            names = set(re.findall(r"\{(\w+)\}", template))
            if not names <= set(ids):
                continue
            for code in (randomized, ready) if "code" in names else (None,):
                path = template.format(**(ids | ({"code": code} if code else {})))
                page = client.get(path)
                if page.status_code != 200 or "text/html" not in page.headers["content-type"]:
                    continue
                parser = _Forms()
                parser.feed(page.text)
                for action, fields in parser.forms:
                    target = action or path
                    if target in ("/logout",) or not target.startswith("/"):
                        continue
                    found.setdefault((username, target), (username, target, fields))
    assert len(found) >= 15, sorted(found)
    return list(found.values())


def test_every_page_form_survives_edge_values(
    fuzz_site: Site, forms: list[tuple[str, str, dict[str, str]]]
) -> None:
    clients = {u: fuzz_site.client(u) for u in {f[0] for f in forms}}
    failures: list[str] = []

    @settings(
        max_examples=10,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    def post_each(data: Any) -> None:
        for username, action, fields in forms:
            fuzzed = {
                k: (v if k == "csrf_token" else data.draw(VALUES, label=f"{action} {k}"))
                for k, v in fields.items()
            }
            response = clients[username].post(action, data=fuzzed)
            if response.status_code >= 500:
                failures.append(f"{username} POST {action} {fuzzed!r}: {response.status_code}")

    post_each()
    assert not failures, failures[:5]
