"""The generic correction routes of the form registry: one page route and one PUT route serve
every form (the former per-form URLs are served by the same handlers), the registry is listed
by the API, and a field the form does not let change is refused naming it."""

from __future__ import annotations

from fastapi.routing import APIRoute
from test_web_edits import REASON, _api, _lab, _patient
from web_support import Site


def test_every_correction_route_is_the_generic_handler(site: Site) -> None:
    from fastapi.routing import iter_route_contexts

    edits = [
        (str(c.path), c.original_route)
        for c in iter_route_contexts(site.app.routes)
        if isinstance(c.original_route, APIRoute)
        and (str(c.path).endswith("/edit") or "PUT" in (c.methods or ()))
    ]
    assert len(edits) >= 20
    # the coder's recoding is its own act (coding permission, MedDRA codes), not a correction
    recoding = {"/api/v1/adverse-events/{ae_id}/coding"}
    for path, route in edits:
        if path in recoding:
            continue
        assert route.endpoint.__module__ in ("reluth.web.forms_pages", "reluth.web.api_forms"), path
    paths = {p for p, _r in edits}
    assert {"/forms/{form_id}/{record}/edit", "/api/v1/forms/{form_id}/{record_id}"} <= paths


def test_generic_put_and_page_of_a_lab_result(site: Site) -> None:
    code = _patient(site)
    inv = site.client("inv1")
    lab_id = _lab(inv, code)
    page = inv.get(f"/forms/lab/{lab_id}/edit")
    assert page.status_code == 200
    assert 'id="edit-value" name="value" inputmode="decimal" value="74000"' in page.text
    api = _api(site, "inv1")
    url = f"/api/v1/forms/lab/{lab_id}"
    unit = api.put(url, json={"unit": "g/l", "reason": REASON})
    assert unit.status_code == 422 and unit.json()["field"] == "unit"
    ok = api.put(url, json={"value": "45000", "reason": REASON})
    assert ok.status_code == 200, ok.text
    assert ok.json()["ctcae_grade"] == 3 and ok.json()["form"] == "lab"
    assert api.put("/api/v1/forms/nonsense/1", json={"reason": "r"}).status_code == 404
    assert api.put("/api/v1/forms/screening/1", json={"reason": "r"}).status_code == 404
    assert _api(site, "inv2").put(url, json={"value": "1", "reason": "r"}).status_code == 404
    assert _api(site, "mon1").put(url, json={"value": "1", "reason": "r"}).status_code == 403
    forms = {f["id"]: f for f in api.get("/api/v1/forms").json()}
    assert forms["lab"]["correctable"] and not forms["screening"]["correctable"]
    value = next(f for f in forms["lab"]["fields"] if f["name"] == "value")
    assert value["missing"] == ["ND", "UNK"] and value["type"] == "decimal"
