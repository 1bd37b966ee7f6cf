"""The 培训与工作坊 view in a real browser (Debian's Chromium, a real ``matcher serve``): plan, edit and
confirm events, list them with attendees, mark one held, record attendance and a rating, download the
sign-in sheet (contacts for coordinators only, audited), at phone width and with the keyboard alone."""

from __future__ import annotations

import io
import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook

from tests.test_web_page import DESKTOP, PHONE, browser, new_page, shot, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
PERIOD = {"from": "2030-03-04", "to": "2030-03-15"}


def call(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict | bytes | None:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    if response.headers.get_content_type() == "application/json":
        return json.loads(raw) if raw else None
    return raw


@pytest.fixture(scope="module")
def venue(site) -> str:  # noqa: F811
    base, tokens = site
    record = {"id": "R9501", "type": "venue", "name": "浏览器测试教室", "county": "", "seats": 40}
    call(base, tokens["coordinator"], "POST", "/v1/resources", record)
    return record["id"]


def open_events(page) -> None:
    page.goto(page.url.split("#")[0] + "#events")
    page.wait_for_selector("#events-list")


def test_coordinator_at_phone_width_plans_edits_and_confirms(browser, site, venue) -> None:  # noqa: F811
    base, tokens = site
    page = new_page(browser, base, PHONE, tokens["coordinator"])
    open_events(page)
    page.fill("#plan-from", PERIOD["from"])
    page.fill("#plan-to", PERIOD["to"])
    page.fill("#plan-min", "2")
    page.click("#plan-form button[type=submit]")
    page.wait_for_selector("#proposals .proposal", timeout=90_000)  # the optimiser runs up to 5 s on a busy machine
    assert "建议" in page.inner_text("#plan-summary")
    first = page.locator("#proposals .proposal").first
    needs = first.locator(".proposal-needs li")
    before = needs.count()
    assert before >= 2
    kept = [needs.nth(i).get_attribute("data-need-id") for i in range(1, before)]
    if before > 2:
        needs.first.locator("button").click()  # drop a need
    else:
        kept = [needs.nth(i).get_attribute("data-need-id") for i in range(before)]
    assert first.locator(".proposal-needs li").count() == len(kept)
    shot(page, "events-01-proposal-phone")
    first.locator("button", has_text="确认为活动").click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('已确认活动')")
    event_id = re.search(r"已确认活动 (\S+)（", page.inner_text("#status")).group(1)
    stored = call(base, tokens["coordinator"], "GET", f"/v1/events/{event_id}")
    assert stored["status"] == "confirmed"
    assert call(base, tokens["coordinator"], "GET", f"/v1/resources/{stored['venue_id']}")["type"] == "venue"
    attendees = call(base, tokens["coordinator"], "GET", f"/v1/attendees?event_id={event_id}&per_page=100")
    assert sorted(a["need_id"] for a in attendees["items"]) == sorted(kept)
    page.wait_for_selector(f"#events-list .event[data-event-id='{event_id}'] table.attendees")
    wide = page.evaluate(
        "[...document.querySelectorAll('#view-events *')].filter(e => e.getBoundingClientRect().right > "
        "window.innerWidth + 1 && !e.closest('.table-wrap')).map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )
    assert wide == []  # nothing off-screen at phone width
    shot(page, "events-02-confirmed-phone")
    assert page.errors == []


def test_mark_held_attendance_rating_and_the_sign_in_sheet(browser, site, venue) -> None:  # noqa: F811
    base, tokens = site
    coordinator = tokens["coordinator"]
    past = datetime.now(UTC) - timedelta(days=2)
    expert = call(base, coordinator, "GET", "/v1/experts?per_page=1")["items"][0]
    event = {
        "id": "V9501",
        "kind": "training",
        "title": "社会工作常用理论及其运用",
        "expert_ids": [expert["id"]],
        "venue_id": venue,
        "starts_at": past.isoformat(),
        "ends_at": (past + timedelta(hours=3)).isoformat(),
        "seats": 30,
        "status": "planned",
    }
    call(base, coordinator, "POST", "/v1/events", event)
    org = next(o for o in ("O001", "O003", "O004") if o != expert.get("org_id"))
    call(base, coordinator, "POST", "/v1/attendees", {"id": "V9501-01", "event_id": "V9501", "org_id": org})
    page = new_page(browser, base, DESKTOP, coordinator)
    open_events(page)
    card = page.locator("#events-list .event[data-event-id='V9501']")
    card.locator("button", has_text="标记已举办").click()
    page.wait_for_function("document.querySelector('#status').textContent.includes('已举办')")
    card = page.locator("#events-list .event[data-event-id='V9501']")
    card.locator("select[aria-label='出席情况']").select_option("attended")
    card.locator("select[aria-label='评分']").select_option("5")
    card.locator("input[aria-label='评语']").fill("案例贴近实际，很实用")
    card.locator("button", has_text="保存").click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('已保存')")
    stored = call(base, coordinator, "GET", "/v1/attendees/V9501-01")
    assert (stored["status"], stored["rating"], stored["comment"]) == ("attended", 5, "案例贴近实际，很实用")
    shot(page, "events-03-held-rated")

    with page.expect_download() as download:
        card.locator("a", has_text="下载签到表").click()
    assert download.value.suggested_filename == "signin-V9501.xlsx"
    with open(download.value.path(), "rb") as handle:
        sheet = load_workbook(io.BytesIO(handle.read())).active
    cells = [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c]
    assert any(expert["phone"] in c for c in cells)  # a coordinator sees the expert's contacts
    assert any("签到" in c for c in cells)
    log = call(base, tokens["admin"], "GET", "/v1/admin/audit?action=view_contacts&per_page=100")
    assert any(expert["id"] in json.dumps(e) for e in log["items"])
    raw = call(base, tokens["analyst"], "GET", "/v1/events/V9501/signin.xlsx")
    analyst_cells = [
        str(c) for row in load_workbook(io.BytesIO(raw)).active.iter_rows(values_only=True) for c in row if c
    ]
    assert not any(expert["phone"] in c for c in analyst_cells)  # analysts get no contacts
    assert page.errors == []


def test_analyst_sees_events_without_planning_or_editing(browser, site, venue) -> None:  # noqa: F811
    base, tokens = site
    page = new_page(browser, base, PHONE, tokens["analyst"])
    open_events(page)
    page.wait_for_selector("#events-list .event")
    assert page.locator("#plan-form").count() == 0
    assert page.locator("#events-list button", has_text="标记已举办").count() == 0
    assert page.errors == []


def test_keyboard_alone_plans_and_confirms(browser, site, venue) -> None:  # noqa: F811
    base, tokens = site
    page = new_page(browser, base, DESKTOP, tokens["coordinator"])
    page.wait_for_selector("#needs-table tbody tr")
    for _ in range(3):
        page.keyboard.press("Tab")  # skip link, sign-out, first navigation link
    for _ in range(4):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "培训与工作坊"
    page.keyboard.press("Enter")
    page.wait_for_selector("#plan-form")
    page.focus("#plan-from")
    page.keyboard.type("03042031")  # a date field takes digits: month, day, year
    page.focus("#plan-to")  # Tab walks a date field's month, day and year first
    page.keyboard.type("03142031")
    assert page.input_value("#plan-from") == "2031-03-04" and page.input_value("#plan-to") == "2031-03-14"
    for _ in range(5):  # three kinds, at least, at most
        page.keyboard.press("Tab")
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "生成方案"
    page.keyboard.press("Enter")
    page.wait_for_selector("#proposals .proposal", timeout=90_000)  # the optimiser runs up to 5 s on a busy machine
    confirm = page.locator("#proposals .proposal").first.locator("button", has_text="确认为活动")
    confirm.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('已确认活动')")
    assert page.errors == []
