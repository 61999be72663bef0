"""The web page in real Chromium against a real server: the README's walk-through, clicked.

One server (dlib pack, fresh data folder) for the module; each step leaves a screenshot in
``test-output/web/`` and the identify view is copied to ``docs/web-identify.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from webhelpers import README_SHOT, Server

pytestmark = [pytest.mark.slow, pytest.mark.realmodel, pytest.mark.integration]

# Enrolment and search with the real models take seconds: wait for them generously.
SLOW = 60_000
DATA_JPEG = re.compile(r"^data:image/jpeg;base64,")


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def shot(page: Any, shots: Path, name: str, *, full_page: bool = True) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


#: Elements reaching past the right edge of the viewport (a narrow screen must not scroll sideways).
OVERFLOW_JS = """() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > window.innerWidth + 1)
  .filter((el) => el.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
  .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} ${el.getBoundingClientRect().width}`)"""


def assert_fits(page: Any) -> None:
    wide = page.evaluate(OVERFLOW_JS)
    assert not wide and page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), wide


#: Visible controls without an accessible name (a label, aria-label, or text for buttons and links).
UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter((el) => el.getClientRects().length)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(['BUTTON', 'A'].includes(el.tagName) && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""


def assert_labelled(page: Any) -> None:
    unlabelled = page.evaluate(UNLABELLED_JS)
    assert not unlabelled, unlabelled


def enter_key(page: Any, key: str) -> None:
    """Type the key and press Enter, as someone using the keyboard would."""
    field = page.get_by_label("API key")
    field.fill(key)
    field.press("Enter")


def test_missing_and_wrong_key_are_explained(page: Any, web_server: Server, shots: Path) -> None:
    page.goto(web_server.url + "/")
    status = page.locator("#key-status")
    expect(status).to_contain_text("No API key")
    expect(status).to_contain_text("API_KEY_MISSING")
    expect(page.get_by_role("heading", name="Enter your API key")).to_be_visible()
    shot(page, shots, "00-no-key")

    enter_key(page, "fs_this_is_not_a_valid_key_0000000000000000")
    expect(status).to_contain_text("This API key was not accepted")
    expect(status).to_contain_text("API_KEY_INVALID")
    expect(page.locator("#need-key-why")).to_contain_text("not accepted")
    expect(page.locator("#view-collections")).to_be_hidden()
    shot(page, shots, "01-wrong-key")

    enter_key(page, web_server.admin_key)  # a good key then works, and is remembered
    expect(status).to_contain_text("Key accepted")
    expect(page.get_by_role("heading", name="Collections")).to_be_visible()
    page.reload()
    expect(page.get_by_label("API key")).to_have_value(web_server.admin_key)
    expect(status).to_contain_text("Key accepted")
    page.get_by_role("button", name="Forget key").click()
    expect(status).to_contain_text("No API key")
    assert page.evaluate("localStorage.getItem('facesearch.apiKey')") is None


def test_walkthrough(page: Any, web_server: Server, shots: Path, faces_dir: Path) -> None:
    started = time.monotonic()
    people, probes, groups, noface = (faces_dir / d for d in ("people", "probes", "groups", "noface"))
    page.goto(web_server.url + "/")
    enter_key(page, web_server.admin_key)
    expect(page.locator("#key-status")).to_contain_text("Key accepted")

    # Collections: create two, delete one (with confirmation).
    create = page.locator("#create-collection")
    for name, title in (("demo", "Web demo"), ("scratch", "")):
        create.get_by_label("Name").fill(name)
        create.get_by_label("Title").fill(title)
        create.get_by_role("button", name="Create collection").click()
        expect(page.locator("#collections-body")).to_contain_text(name)
    expect(page.locator("#create-collection-msg")).to_contain_text("scratch created")
    create.get_by_label("Name").fill("demo")
    create.get_by_role("button", name="Create collection").click()
    expect(page.locator("#create-collection-msg")).to_contain_text("CONFLICT")
    page.get_by_role("button", name="Delete collection scratch").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("scratch")
    page.keyboard.press("Escape")  # the keyboard way out; focus starts on Cancel
    expect(dialog).to_be_hidden()
    expect(page.locator("#collections-body tr")).to_have_count(2)
    page.get_by_role("button", name="Delete collection scratch").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#collections-body tr")).to_have_count(1)
    expect(page.locator("#collections-msg")).to_contain_text("deleted")
    assert_labelled(page)
    shot(page, shots, "02-collections")

    # Enrol obama (two photos) and biden (one photo and one without a face: refused with the reason).
    page.get_by_role("link", name="demo", exact=True).click()
    expect(page.get_by_role("heading", name="Collection demo")).to_be_visible()
    enrol = page.locator("#enrol-form")
    enrol.get_by_label("Name").fill("Barack Obama")
    enrol.get_by_label("External id").fill("obama")
    enrol.get_by_label("Metadata").fill('{"role": "president"}')
    enrol.get_by_label("Groups").fill("presidents")
    enrol.get_by_label("Photos of the person").set_input_files(sorted((people / "obama").glob("*.jpg")))
    expect(page.locator("#enrol-files li")).to_have_count(2)
    enrol.get_by_role("button", name="Enrol person").click()
    expect(page.locator("#enrol-msg")).to_contain_text("Barack Obama enrolled with 2 photos", timeout=SLOW)
    expect(page.locator("#enrol-files li.done")).to_have_count(2)
    shot(page, shots, "03-enrolled-obama")

    enrol.get_by_label("Name").fill("Joe Biden")
    enrol.get_by_label("External id").fill("biden")
    enrol.get_by_label("Photos of the person").set_input_files(
        [people / "biden" / "biden.jpg", noface / "skimage_coffee.jpg"]
    )
    expect(page.locator("#enrol-files li")).to_have_count(2)  # the previous list was cleared
    enrol.get_by_role("button", name="Enrol person").click()
    expect(page.locator("#enrol-msg")).to_contain_text(
        "Joe Biden enrolled with 1 photo; 1 refused", timeout=SLOW
    )
    refused = page.locator("#enrol-files li.refused")
    expect(refused).to_contain_text("skimage_coffee.jpg")
    expect(refused).to_contain_text("No face was found")
    expect(refused).to_contain_text("FACE_NOT_DETECTED")
    shot(page, shots, "04-enrolled-biden-one-refused")

    # The grid: names, external ids, groups, thumbnails fetched with the key; search by name.
    cards = page.locator("#persons-grid > li")
    expect(cards).to_have_count(2)
    obama_card = cards.filter(has_text="Barack Obama")
    expect(obama_card).to_contain_text("obama")
    expect(obama_card).to_contain_text("presidents")
    expect(obama_card).to_contain_text("president")
    expect(obama_card.locator("img")).to_have_count(2)
    page.wait_for_function(
        "[...document.querySelectorAll('#persons-grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    expect(page.locator("#coll-counts")).to_contain_text("2 persons · 3 faces")
    page.get_by_label("Search by name").fill("jo")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Joe Biden")
    page.get_by_label("Search by name").fill("")
    expect(cards).to_have_count(2)

    # Add a face to Biden (file chooser), then remove it again (with confirmation).
    biden_card = cards.filter(has_text="Joe Biden")
    with page.expect_file_chooser() as chooser:
        biden_card.get_by_role("button", name="Add face to Joe Biden").click()
    chooser.value.set_files(people / "biden" / "biden2.jpg")
    expect(biden_card.locator("img")).to_have_count(2, timeout=SLOW)
    expect(page.locator("#coll-counts")).to_contain_text("4 faces")
    assert_labelled(page)
    shot(page, shots, "05-persons")
    biden_card.get_by_role("button", name="Remove this face of Joe Biden").last.click()
    page.locator("#confirm").get_by_role("button", name="Remove").click()
    expect(biden_card.locator("img")).to_have_count(1)

    # Identify: obama first, with the face boxed, the similarity bar and the timings.
    page.get_by_role("link", name="Identify", exact=True).click()
    panel = page.locator("#panel-identify")
    panel.get_by_label("Photo: drop it here").set_input_files(probes / "obama1.jpg")
    first = page.locator("#identify-result ol.matches > li").first
    expect(first).to_contain_text("Barack Obama", timeout=SLOW)
    expect(first).to_contain_text("obama")
    expect(first).to_contain_text("Similarity")
    expect(first.locator("img")).to_have_attribute("src", DATA_JPEG)
    expect(page.locator("#identify-result .box")).to_have_count(1)
    expect(page.locator("#identify-result .box-label")).to_have_text("Barack Obama")
    expect(page.locator("#identify-result .timings")).to_contain_text("detect")
    page.locator("#identify-result img").first.scroll_into_view_if_needed()
    assert_labelled(page)
    identify_shot = shot(page, shots, "06-identify")
    if os.environ.get("FACESEARCH_UPDATE_SCREENSHOT") == "1":  # a test run never edits tracked files
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(identify_shot, README_SHOT)

    # A photo without a face: the reason in words, with the code.
    panel.get_by_label("Photo: drop it here").set_input_files(noface / "skimage_rocket.jpg")
    error = page.locator("#identify-result .error")
    expect(error).to_contain_text("No face was found in this photo", timeout=SLOW)
    expect(error).to_contain_text("FACE_NOT_DETECTED")
    shot(page, shots, "07-identify-no-face")

    # Options: a group nobody is in, and an invalid false-positive rate caught before sending.
    panel.get_by_label("Only these groups").fill("nobody-here")
    panel.get_by_label("Photo: drop it here").set_input_files(probes / "obama1.jpg")
    expect(page.locator("#identify-result .nomatch")).to_contain_text(
        "Unknown: nobody in this collection passes", timeout=SLOW
    )
    panel.get_by_label("Only these groups").fill("")
    panel.get_by_label("False-positive rate", exact=True).check()
    panel.get_by_label("Max. false-positive rate").fill("2")
    panel.get_by_role("button", name="Identify").click()
    expect(page.locator("#identify-result .error")).to_contain_text("false-positive rate is a number")
    panel.get_by_label("Collection’s rule").check()

    # Identify all faces: both boxed and named, and listed below.
    page.get_by_role("link", name="Identify all faces").click()
    all_panel = page.locator("#panel-identify-all")
    all_panel.get_by_label("Photo: drop it here").set_input_files(groups / "fr_two_people.jpg")
    found = page.locator("#all-result ol.faces-found > li")
    expect(found).to_have_count(2, timeout=SLOW)
    expect(page.locator("#all-result .box-label")).to_have_count(2)
    labels = " ".join(page.locator("#all-result .box-label").all_inner_texts())
    assert "Barack Obama" in labels and "Joe Biden" in labels, labels
    assert "unknown" not in labels
    expect(found.filter(has_text="Barack Obama")).to_have_count(1)
    expect(found.filter(has_text="Joe Biden")).to_have_count(1)
    shot(page, shots, "08-identify-all")

    # A narrow screen: nothing wider than the viewport.
    page.set_viewport_size({"width": 380, "height": 800})
    page.get_by_role("link", name="Identify", exact=True).click()
    panel.get_by_role("button", name="Identify").click()  # the same photo again
    expect(first).to_contain_text("Barack Obama", timeout=SLOW)
    assert_fits(page)
    shot(page, shots, "09-narrow-identify")
    page.get_by_role("link", name="Persons").click()
    expect(cards).to_have_count(2)
    assert_fits(page)
    shot(page, shots, "10-narrow-persons")

    # Delete a person (with confirmation).
    page.get_by_role("button", name="Delete Joe Biden").click()
    page.locator("#confirm").get_by_role("button", name="Delete").click()
    expect(cards).to_have_count(1)
    expect(page.locator("#persons-msg")).to_contain_text("Joe Biden deleted")
    print(f"\nweb walk-through: {time.monotonic() - started:.1f} s; screenshots in {shots}")


def test_api_docs_work_offline_from_this_origin_only(page: Any, web_server: Server, shots: Path) -> None:
    """/docs is Swagger UI from the installed fastapi-offline package: every request stays on this
    server (nothing from a CDN), under a CSP with no inline script (#15 point 8)."""
    origins: list[str] = []
    page.on("request", lambda r: origins.append(r.url.split("/")[2]))
    page.goto(f"{web_server.url}/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("/v1/collections/{collection}/identify", exact=True).first).to_be_visible()
    host = web_server.url.split("/")[2]
    assert origins and set(origins) == {host}, sorted(set(origins))
    shot(page, shots, "90-api-docs")
