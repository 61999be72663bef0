"""The web page's corrections and unknown faces in real Chromium against a real server: merge, split,
"not this person", an ambiguous pair, and the Unknown faces tab. Screenshots in
``test-output/web/corrections-*.png`` (``FACESEARCH_UPDATE_SCREENSHOT=1`` also copies the unknown-
faces view to ``docs/web-unknowns.png`` for the README; a test run never edits tracked files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_browser import SLOW, assert_fits, assert_labelled, enter_key, expect, shot
from webhelpers import REPO, Server

pytestmark = [pytest.mark.slow, pytest.mark.realmodel, pytest.mark.integration]
UNKNOWNS_SHOT = REPO / "docs" / "web-unknowns.png"


def _enrol(api: httpx.Client, ext: str, name: str, photo: Path) -> dict[str, Any]:
    files = [("images", (photo.name, photo.read_bytes(), "image/jpeg"))]
    r = api.post("/v1/collections/corr/persons", data={"external_id": ext, "name": name}, files=files)
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def _identify(api: httpx.Client, photo: Path) -> dict[str, Any]:
    files = [("image", (photo.name, photo.read_bytes(), "image/jpeg"))]
    r = api.post("/v1/collections/corr/identify", files=files)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def test_corrections_in_the_browser(page: Any, web_server: Server, shots: Path, faces_dir: Path) -> None:
    people, probes = faces_dir / "people", faces_dir / "probes"
    headers = {"X-API-Key": web_server.admin_key}
    with httpx.Client(base_url=web_server.url, headers=headers, timeout=120) as api:
        body = {"name": "corr", "settings": {"remember_unknown": True}}
        assert api.post("/v1/collections", json=body).status_code == 201
        _enrol(api, "obama", "Barack Obama", people / "obama" / "obama.jpg")
        _enrol(api, "barack", "B. Obama (duplicate)", people / "obama" / "obama2.jpg")
        _enrol(api, "biden", "Joe Biden", people / "biden" / "biden.jpg")
        # Two strangers are seen: Kit Harington twice, Rose Leslie once (remembered as unknown).
        for photo in ("kit_harington/john1.jpeg", "kit_harington/john2.jpeg", "rose_leslie/img1.jpg"):
            assert _identify(api, people / photo)["unknown_id"]

    page.goto(web_server.url + "/#/c/corr")
    enter_key(page, web_server.admin_key)
    cards = page.locator("#persons-grid > li")
    expect(cards).to_have_count(3, timeout=SLOW)

    # Merge the duplicate into Barack Obama (with confirmation): one card, two faces.
    obama = cards.filter(has_text="Barack Obama")
    obama.get_by_role("button", name="Merge… into Barack Obama").click()
    obama.get_by_label("Merge into Barack Obama:").select_option(label="B. Obama (duplicate) (barack)")
    assert_labelled(page)
    shot(page, shots, "corrections-01-merge")
    obama.get_by_role("button", name="Merge", exact=True).click()
    page.locator("#confirm").get_by_role("button", name="Merge").click()
    expect(cards).to_have_count(2, timeout=SLOW)
    expect(obama.locator("ul.faces img")).to_have_count(2)
    expect(page.locator("#coll-counts")).to_contain_text("2 persons · 3 faces")

    # Split the second face off again, into a new person.
    obama.get_by_role("button", name="Split… Barack Obama").click()
    obama.get_by_label("face 2").check()
    obama.get_by_label("The new person’s name").fill("Obama, second photo")
    shot(page, shots, "corrections-02-split")
    obama.get_by_role("button", name="Move to a new person").click()
    expect(cards).to_have_count(3, timeout=SLOW)
    expect(page.locator("#persons-msg")).to_contain_text("moved from Barack Obama to a new person")

    # Identify with a lax threshold: Biden's second photo also names others; "Not this person".
    page.get_by_role("link", name="Identify", exact=True).click()
    panel = page.locator("#panel-identify")
    panel.get_by_label("Similarity threshold", exact=True).check()
    panel.get_by_label("Similarity threshold (0 to 1)").fill("0")
    panel.get_by_label("Photo: drop it here").set_input_files(people / "biden" / "biden2.jpg")
    matches = page.locator("#identify-result ol.matches > li")
    expect(matches.first).to_contain_text("Joe Biden", timeout=SLOW)
    expect(matches).to_have_count(3)
    wrong = matches.filter(has_text="Barack Obama")
    wrong.get_by_role("button", name="Not this person").click()
    expect(page.locator("#identify-result")).to_contain_text(
        "Recorded: this face is not Barack Obama", timeout=SLOW
    )
    expect(page.locator("#identify-result .vetoed")).to_contain_text("1 person was left out")
    expect(matches.filter(has_text="Barack Obama")).to_have_count(0)
    shot(page, shots, "corrections-03-not-this-person")

    # Two persons recorded as different people both match Obama's probe: the answer says so.
    with httpx.Client(base_url=web_server.url, headers=headers, timeout=120) as api:
        persons = api.get("/v1/collections/corr/persons").json()["data"]["persons"]
        second = next(p for p in persons if p["name"] == "Obama, second photo")
        r = api.post("/v1/collections/corr/persons/obama/different", json={"person": second["id"]})
        assert r.status_code == 200, r.text
    panel.get_by_label("Collection’s rule").check()
    panel.get_by_label("Photo: drop it here").set_input_files(probes / "obama1.jpg")
    note = page.locator("#identify-result .ambiguous")
    expect(note).to_contain_text("are recorded as different people", timeout=SLOW)
    expect(note).to_contain_text("Barack Obama")
    expect(note).to_contain_text("Obama, second photo")
    expect(page.locator("#identify-result")).not_to_contain_text("null")
    shot(page, shots, "corrections-04-ambiguous")

    # Unknown faces: Kit's two photos make one cluster; name it in one click.
    page.get_by_role("link", name="Unknown faces").click()
    clusters = page.locator("#unknown-clusters > li")
    expect(clusters).to_have_count(2, timeout=SLOW)
    expect(page.locator("#unknowns-status")).to_contain_text("3 unknown faces held")
    expect(clusters.first).to_contain_text("2 faces")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#unknown-clusters img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )
    assert_labelled(page)
    unknowns_shot = shot(page, shots, "corrections-05-unknown-faces")
    if os.environ.get("FACESEARCH_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(unknowns_shot, UNKNOWNS_SHOT)
    clusters.first.get_by_label("Name").fill("Kit Harington")
    clusters.first.get_by_role("button", name="Make a new person").click()
    expect(page.locator("#unknowns-msg")).to_contain_text("2 faces now belong to Kit Harington", timeout=SLOW)
    expect(clusters).to_have_count(1)
    shot(page, shots, "corrections-06-cluster-named")
    page.set_viewport_size({"width": 380, "height": 800})
    assert_fits(page)
    shot(page, shots, "corrections-07-narrow-unknowns")

    # The named person is found from then on.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="Identify", exact=True).click()
    panel.get_by_label("Photo: drop it here").set_input_files(people / "kit_harington" / "john1.jpeg")
    expect(page.locator("#identify-result ol.matches > li").first).to_contain_text(
        "Kit Harington", timeout=SLOW
    )
