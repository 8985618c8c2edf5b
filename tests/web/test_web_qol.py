"""QoL entry item by item: live scale scores from the QoL engine, refusal of an out-of-range
answer next to its item without losing input, the audited save, and site isolation."""

from __future__ import annotations

import re

from web_support import Site, included_via_api

# PF items 1-5 all 1 -> 100; QL items 29, 30 = 7 -> 100; PA items 9 = 2, 19 = 3 -> RS 2.5 -> 50
ANSWERS = {"item_1": "1", "item_2": "1", "item_3": "1", "item_4": "1", "item_5": "1"}
ANSWERS |= {"item_29": "7", "item_30": "7", "item_9": "2", "item_19": "3"}


def _register(site: Site) -> str:
    r = site.client("inv1").post("/patients", data={"centre": "C01"})
    assert r.status_code == 303, r.text
    return str(r.headers["location"]).rsplit("/", 1)[1]


def _score(html: str, scale: str) -> str:
    found = re.search(rf'data-testid="qol-{scale}">([^<]*)<', html)
    assert found, scale
    return found.group(1)


def test_entry_page_lists_every_item_with_its_range(site: Site) -> None:
    code = _register(site)
    nurse = site.client("nurse1")
    page = nurse.get(f"/patients/{code}/qol").text
    assert page.count('type="radio" name="item_1"') == 4
    assert page.count('type="radio" name="item_29"') == 7
    assert "item_31" not in page and "28. financial difficulties" in page
    module = nurse.get(f"/patients/{code}/qol", params={"instrument": "QLQ-GINET21"}).text
    assert 'name="item_31"' in module and 'name="item_51"' in module and "item_30" not in module
    assert "not verified" in module  # the GI.NET21 scale map is flagged, not hidden
    timeline = nurse.get(f"/patients/{code}").text
    assert f'href="/patients/{code}/qol?instrument=QLQ-C30"' in timeline


def test_live_scores_then_saved_through_the_audited_service(site: Site) -> None:
    code = included_via_api(site)  # questionnaires are recorded for included patients
    inv = site.client("inv1")
    live = inv.post(f"/patients/{code}/qol/scores", data={"instrument": "QLQ-C30", **ANSWERS})
    assert live.status_code == 200
    assert _score(live.text, "PF") == "100.00"
    assert _score(live.text, "QL") == "100.00"
    assert _score(live.text, "PA") == "50.00"
    assert _score(live.text, "RF") == "–"  # no item answered: not scored
    assert _score(live.text, "summary") == "–"  # a component is missing
    half = inv.post(f"/patients/{code}/qol/scores", data={"instrument": "QLQ-C30", "item_9": "4"})
    assert _score(half.text, "PA") == "100.00"  # 1 of 2 items: the half-items rule scores it
    registered_only = _register(site)
    refused = inv.post(
        f"/patients/{registered_only}/qol",
        data={"instrument": "QLQ-C30", "timepoint": "QOL-W00", "completed_on": "2025-03-10"}
        | ANSWERS,
    )
    assert refused.status_code == 409 and "not included" in refused.text
    saved = inv.post(
        f"/patients/{code}/qol",
        data={"instrument": "QLQ-C30", "timepoint": "QOL-W00", "completed_on": "2025-03-10"}
        | ANSWERS,
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/patients/{code}#qol"
    timeline = inv.get(f"/patients/{code}").text
    assert "QOL-W00" in timeline and "PF 100.00" in timeline and "PA 50.00" in timeline
    assert "qol_questionnaires" in inv.get(f"/patients/{code}/audit").text
    again = inv.post(
        f"/patients/{code}/qol",
        data={"instrument": "QLQ-C30", "timepoint": "QOL-W00", "completed_on": "2025-03-10"}
        | ANSWERS,
    )
    assert again.status_code == 409 and "already recorded" in again.text


def test_out_of_range_item_is_refused_next_to_the_item_and_input_kept(site: Site) -> None:
    code = included_via_api(site)
    inv = site.client("inv1")
    live = inv.post(f"/patients/{code}/qol/scores", data={"instrument": "QLQ-C30", "item_3": "5"})
    assert "(item 3, " in live.text and "out of range" in live.text  # no internal name
    form = {"instrument": "QLQ-C30", "timepoint": "QOL-W08", "completed_on": "2025-03-10"}
    bad = inv.post(f"/patients/{code}/qol", data=form | ANSWERS | {"item_3": "5"})
    assert bad.status_code == 422
    item3 = bad.text[bad.text.index('id="item-3"') : bad.text.index('id="item-4"')]
    assert 'id="item-3-error"' in item3 and "out of range" in item3
    assert 'value="QOL-W08"' in bad.text
    assert re.search(r'name="item_29" value="7" checked', bad.text)
    bad_date = inv.post(f"/patients/{code}/qol", data=form | {"completed_on": "2031-01-01"})
    assert bad_date.status_code == 422 and 'id="qol-completed-error"' in bad_date.text
    with site.db() as db:
        from sqlalchemy import func, select

        from reluth.qol.models import QolQuestionnaire

        assert db.scalar(select(func.count()).select_from(QolQuestionnaire)) == 0


def test_other_centre_and_roles_without_qol_write(site: Site) -> None:
    code = _register(site)
    other = site.client("inv2")
    assert other.get(f"/patients/{code}/qol").status_code == 404
    assert other.post(f"/patients/{code}/qol/scores", data=ANSWERS).status_code == 404
    form = {"instrument": "QLQ-C30", "timepoint": "QOL-W00", "completed_on": "2025-03-10"}
    assert other.post(f"/patients/{code}/qol", data=form | ANSWERS).status_code == 404
    assert site.client("mon1").get(f"/patients/{code}/qol").status_code == 403
    assert site.client("rev").get(f"/patients/{code}/qol").status_code == 403
    assert "Enter QLQ-C30" not in site.client("mon1").get(f"/patients/{code}").text
