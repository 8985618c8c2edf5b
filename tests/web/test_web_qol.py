"""QoL entry item by item: live scale scores from the QoL engine, refusal of an out-of-range
answer next to its item without losing input, the audited save, and site isolation."""

from __future__ import annotations

import re

from web_support import Site, audit_values, included_via_api

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
    # the item's answers, and "not answered" (value "") to clear a choice back to missing
    assert re.findall(r'type="radio" name="item_1" value="(\d*)"', page) == ["1", "2", "3", "4", ""]
    assert page.count('type="radio" name="item_29"') == 7 + 1
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
    assert re.fullmatch(rf"/patients/{code}\?saved=qol-\d+#qol", saved.headers["location"])
    timeline = inv.get(f"/patients/{code}").text
    assert "QOL-W00" in timeline and "PF 100.00" in timeline and "PA 50.00" in timeline
    audit = inv.get(f"/patients/{code}/audit").text
    assert audit_values(audit, "timepoint", "qol_questionnaires") == ["QOL-W00"]
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
    assert '<option value="QOL-W08" selected>' in bad.text
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


def test_time_point_is_chosen_from_the_schedule_and_an_unknown_one_refused(site: Site) -> None:
    # Issue 17: "whatever" was accepted as a time point with 1 of 30 items answered.
    from reluth.protocol.schedule import qol_timepoints

    code = included_via_api(site)
    inv = site.client("inv1")
    page = inv.get(f"/patients/{code}/qol").text
    select = page[page.index('<select id="qol-timepoint"') : page.index("</select>")]
    scheduled = qol_timepoints(site.trial.protocol)
    assert re.findall(r'<option value="([^"]+)"', select) == scheduled
    assert 'list="qol-timepoints"' not in page  # no free text any more
    form = {"instrument": "QLQ-C30", "timepoint": "whatever", "completed_on": "2025-03-10"}
    refused = inv.post(f"/patients/{code}/qol", data=form | {"item_1": "1"})
    assert refused.status_code == 422
    assert 'id="qol-timepoint-error"' in refused.text and "QOL-W00" in refused.text
    api = inv.post(f"/api/v1/patients/{code}/qol", json=form | {"items": {"1": 1}})
    assert api.status_code == 422
    assert api.json()["field"] == "questionnaire.timepoint"
    assert all(tp in api.json()["error"] for tp in scheduled[:2])
    with site.db() as db:
        from sqlalchemy import func
        from sqlalchemy import select as sql_select

        from reluth.qol.models import QolQuestionnaire

        assert db.scalar(sql_select(func.count()).select_from(QolQuestionnaire)) == 0


def test_an_answer_can_be_cleared_back_to_missing(site: Site) -> None:
    code = included_via_api(site)
    inv = site.client("inv1")
    page = inv.get(f"/patients/{code}/qol").text
    # each item offers "not answered" (value ""), checked while nothing is chosen
    assert re.search(r'name="item_1" value="" checked', page)
    form = {"instrument": "QLQ-C30", "timepoint": "QOL-W00", "completed_on": "2025-03-10"}
    cleared = form | ANSWERS | {"item_29": "", "item_30": ""}
    live = inv.post(f"/patients/{code}/qol/scores", data=cleared)
    assert _score(live.text, "QL") == "–"  # cleared: missing, not scored
    kept = inv.post(f"/patients/{code}/qol", data=cleared | {"item_3": "5"})
    assert kept.status_code == 422
    assert re.search(r'name="item_29" value="" checked', kept.text)
    assert re.search(r'name="item_1" value="1" checked', kept.text)
