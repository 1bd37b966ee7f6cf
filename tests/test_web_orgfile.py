"""The organisation file, the outcome follow-up and the bureau report in a real browser (Debian's
Chromium, a real ``matcher serve``): complete an engagement with its outcome, open the organisation's
file and download it, make and download the report, at phone width and with the keyboard alone."""

from __future__ import annotations

import io
import json
import urllib.request
from datetime import date

import pytest
from openpyxl import load_workbook

from tests.test_web_page import DESKTOP, PHONE, browser, new_page, shot, site, wait_for_function  # noqa: F401

pytestmark = pytest.mark.slow


def call(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict | None:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def engage(base: str, token: str, org_id: str, title: str) -> dict:
    """A new need of ``org_id`` with an accepted expert of another organisation: its open engagement."""
    need = call(
        base,
        token,
        "POST",
        "/v1/needs",
        {"org_id": org_id, "title": title, "description": f"{title}，希望专家指导。", "tags": ["个案管理"]},
    )
    experts = call(base, token, "GET", "/v1/experts?per_page=100")["items"]
    expert = next(
        e for e in experts if e["available"] and e["open_engagements"] < e["capacity"] and e.get("org_id") != org_id
    )
    decision = {"need_id": need["id"], "target_type": "expert", "target_id": expert["id"], "decision": "accepted"}
    return call(base, token, "POST", "/v1/feedback", decision)["engagement"]


def no_overflow(page, view: str) -> list[str]:
    return page.evaluate(
        f"[...document.querySelectorAll('#view-{view} *')].filter(e => e.getBoundingClientRect().right > "
        "window.innerWidth + 1 && !e.closest('.table-wrap')).map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )


def test_phone_width_complete_with_outcome_open_the_file_and_download_it_and_the_report(browser, site) -> None:  # noqa: F811
    base, tokens = site
    coordinator = tokens["coordinator"]
    engagement = engage(base, coordinator, "O003", "个案管理流程怎么建")
    page = new_page(browser, base, PHONE, coordinator)
    page.goto(page.url.split("#")[0] + "#engagements")
    page.wait_for_selector("#e-org option[value='O003']", state="attached")
    page.select_option("#e-org", "O003")
    page.select_option("#e-status", "open")
    page.click("#eng-filters button[type=submit]")
    row = page.locator("#eng-table tbody tr", has_text=engagement["need_id"])
    row.locator("button", has_text="完成").click()
    form = row.locator("form.outcome-form")
    form.locator("select[name=goal_met]").select_option("yes")
    form.locator("select[name=rating]").select_option("5")
    form.locator("input[name=hours]").fill("4.5")
    form.locator("input[name=changed]").fill("建立了个案转介流程")
    shot(page, "orgfile-01-outcome-phone")
    assert no_overflow(page, "engagements") == []
    form.locator("button", has_text="保存回访并完成").click()
    wait_for_function(page, "document.querySelector('#status').textContent.includes('目标达成')")
    stored = call(base, coordinator, "GET", f"/v1/engagements?need_id={engagement['need_id']}")["items"][0]
    assert stored["status"] == "completed"
    assert (stored["outcome"]["goal_met"], stored["outcome"]["rating"], stored["outcome"]["hours"]) == ("yes", 5, 4.5)

    page.goto(page.url.split("#")[0] + "#orgfile/O003")
    page.wait_for_selector("#file-engagements")
    assert "建立了个案转介流程" in page.inner_text("#file-engagements")
    assert "目标达成" in page.inner_text("#file-summary") or "目标达成 " in page.inner_text("#file-summary")
    assert no_overflow(page, "orgfile") == []
    shot(page, "orgfile-02-file-phone")
    page.select_option("#file-status-form select[name=status]", "graduated")
    page.fill("#file-status-form input[name=left_on]", "2026-11-30")
    page.fill("#file-status-form input[name=licensed_social_workers]", "2")
    page.click("#file-status-form button[type=submit]")
    wait_for_function(page, "document.querySelector('#status').textContent.includes('已出壳')")
    org = call(base, coordinator, "GET", "/v1/organisations/O003")
    assert (org["status"], org["left_on"], org["licensed_social_workers"]) == ("graduated", "2026-11-30", 2)
    with page.expect_download() as download:
        page.click("#file-download")
    assert download.value.suggested_filename == "file-O003.xlsx"
    book = load_workbook(io.BytesIO(download.value.path().read_bytes()))
    assert "建立了个案转介流程" in [row[10] for row in book["合作与成效"].iter_rows(values_only=True)]

    page.goto(page.url.split("#")[0] + "#report")
    page.wait_for_selector("#report section[data-table='engagements'] .chart")
    quarter = f"{date.today().year}Q{(date.today().month - 1) // 3 + 1}"
    assert quarter in page.inner_text("#report")
    totals = page.locator("#report-engagements tbody tr", has_text="合计").filter(has_text="完成合作").first
    assert int(totals.locator("td").nth(3).text_content()) >= 1
    assert no_overflow(page, "report") == []
    shot(page, "orgfile-03-report-phone")
    with page.expect_download() as download:
        page.click("#report-download")
    assert download.value.suggested_filename == f"report-{quarter}.xlsx"
    sheets = load_workbook(io.BytesIO(download.value.path().read_bytes())).sheetnames
    assert sheets[0] == "封面" and "合作与成效" in sheets
    assert page.errors == []


def test_keyboard_alone_completes_with_an_outcome_and_downloads_the_report(browser, site) -> None:  # noqa: F811
    base, tokens = site
    coordinator = tokens["coordinator"]
    engagement = engage(base, coordinator, "O004", "小组工作怎么开展")
    page = new_page(browser, base, DESKTOP, coordinator)
    page.goto(page.url.split("#")[0] + f"#match/{engagement['need_id']}")
    done = page.locator("#need-engagements button", has_text="完成")
    done.wait_for()
    done.focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.name") == "goal_met"  # the form takes the focus
    page.keyboard.press("ArrowDown")  # 目标达成
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # 5 分
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.type("机构学会了带领小组")
    page.keyboard.press("Enter")  # submits the form
    wait_for_function(page, "document.querySelector('#status').textContent.includes('已记录：完成合作')")
    stored = call(base, coordinator, "GET", f"/v1/engagements?need_id={engagement['need_id']}")["items"][0]
    assert stored["outcome"]["goal_met"] == "yes" and stored["outcome"]["changed"] == "机构学会了带领小组"

    page.goto(page.url.split("#")[0] + "#needs")
    page.wait_for_selector("#needs-table tbody tr")
    page.focus("nav a[data-view='events']")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "工作报表"
    page.keyboard.press("Enter")
    page.wait_for_selector("#report-form")
    page.focus("#report-period")
    page.keyboard.press("Control+a")
    page.keyboard.type("2026Q9")
    page.keyboard.press("Enter")
    wait_for_function(page, "!document.querySelector('#error').hidden")
    assert "period" in page.inner_text("#error")  # a bad period is said, not a blank page
    page.focus("#report-period")
    page.keyboard.press("Control+a")
    page.keyboard.type(str(date.today().year))
    page.keyboard.press("Enter")
    wait_for_function(
        page, f"document.querySelector('#status').textContent.includes('已生成 {date.today().year} 工作报表')"
    )
    page.focus("#report-download")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == f"report-{date.today().year}.xlsx"
    assert page.errors == []
