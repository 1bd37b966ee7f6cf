"""The coordinators' page in a real browser: Playwright driving Debian's Chromium against a real server.

``make test`` installs Chromium (apt, as root) and Playwright (PyPI; no browser download). Where
either is missing these tests skip with the reason, except under ``CI=true`` where they must run.
Screenshots of every step go to ``test-output/browser/`` (``MATCHER_TEST_OUTPUT`` overrides).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.access_support import copy_database, make_keys
from tests.test_server import start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("MATCHER_TEST_OUTPUT") or ROOT / "test-output") / "browser"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (make test installs it from PyPI)")
    executable = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if executable is None:
        _unavailable("Chromium is not installed (make test installs Debian's chromium when run as root)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory):
    """A real server over a private copy of the trained database, with one key per role."""
    folder = tmp_path_factory.mktemp("site")
    url = copy_database(trained["database"], folder / "site.sqlite3")
    tokens = make_keys(url)
    env = {
        **os.environ,
        "MATCHER_MODELS_DIR": str(trained["models"]),
        "MATCHER_DATA_DIR": str(trained["data"]),
        "DATABASE_URL": url,
    }
    process, base = start_server(env, folder / "server.log", workers=1)
    yield base, tokens
    stop_server(process)


def api(base: str, token: str, path: str) -> dict:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def wait_for_function(page, expression: str, timeout: float = 30_000) -> None:
    """``page.wait_for_function`` for a page under ``script-src 'self'``.

    Playwright's own version compiles the expression inside the page, which the page's
    Content-Security-Policy forbids (no ``unsafe-eval``); this one polls ``page.evaluate`` (run by
    the browser's debugging protocol, which the policy does not govern) until it is truthy.
    """
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout / 1000
    while True:
        try:
            if page.evaluate(expression):
                return
        except PlaywrightError as error:  # an element not there yet: keep polling, as Playwright does
            if time.monotonic() >= deadline:
                raise AssertionError(f"{expression}: {error}") from error
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout / 1000:g} s waiting for: {expression}")
        time.sleep(0.05)


def new_page(browser, base: str, viewport: dict, role_token: str | None = None):
    """A page in a fresh context, signed in through the page's own form when ``role_token`` is given.

    The page runs under the service's Content-Security-Policy: a violation is a page error.
    """
    context = browser.new_context(viewport=viewport, locale="zh-CN", accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.wait_for_function = functools.partial(wait_for_function, page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base + "/")
    if role_token is not None:
        page.fill("#api-key", role_token)
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("nav")
    page.errors = errors  # JavaScript errors, checked at the end of each test
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_match(page, need_id: str) -> None:
    page.goto(page.url.split("#")[0] + f"#match/{need_id}")
    page.wait_for_selector(f"#need-heading:has-text('{need_id}')")
    page.wait_for_selector("#results .match")


def test_coordinator_finds_matches_justifies_accepts_and_completes(browser, site) -> None:
    base, tokens = site
    page = new_page(browser, base, DESKTOP)

    # sign in: a wrong key is refused with a message, the right one opens the page
    page.fill("#api-key", "mk_not-a-real-key-at-all")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "登录失败" in page.inner_text("#error")
    shot(page, "01-sign-in-refused")
    page.fill("#api-key", tokens["coordinator"])
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("nav")
    assert "协调员" in page.inner_text("#account")
    page.wait_for_selector("#needs-table tbody tr")
    assert page.inner_text("#model-version").startswith("2")

    # filter the open needs by category and county
    expected = api(base, tokens["coordinator"], "/v1/needs?status=open&tag=%E4%B8%AA%E6%A1%88%E7%AE%A1%E7%90%86&county=%E9%9B%84%E5%8E%BF")
    page.select_option("#f-tag", "个案管理")
    page.select_option("#f-county", "雄县")
    page.click("#needs-filters button[type=submit]")
    page.wait_for_function(f"document.querySelector('#needs-count').textContent == '共 {expected['total']} 条需求'")
    rows = page.locator("#needs-table tbody tr")
    assert rows.count() == min(expected["total"], 20) >= 1
    for index in range(rows.count()):
        cells = rows.nth(index).locator("td")
        assert cells.nth(3).inner_text() == "雄县"
        assert "个案管理" in cells.nth(5).inner_text()
        assert cells.nth(7).inner_text() == "待匹配"
    shot(page, "02-needs-filtered")

    # open one with the keyboard: its 匹配 link is focusable and Enter follows it
    need_id = rows.first.locator("td").first.inner_text()
    rows.first.locator("a.action").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#need-heading:has-text('{need_id}')")
    page.wait_for_selector("#results .match")
    assert "匹配完成" in page.inner_text("#status")

    # reasons: matched terms highlighted in the need and in the profiles, load against capacity
    assert page.locator("#need-normalised mark").count() > 0
    experts = page.locator("#results section[aria-label='专家'] .match")
    assert experts.count() >= 1
    first = experts.first
    assert first.locator(".profile mark").count() > 0
    assert re.search(r"负荷 \d+/\d+", first.inner_text())
    highlighted = first.locator(".reasons mark").all_inner_texts()
    assert set(first.locator(".profile mark").all_inner_texts()) <= set(highlighted)
    shot(page, "03-match-reasons")

    # contacts are shown on request to a coordinator
    first.locator(".contact button").click()
    page.wait_for_function("document.querySelector('#results .contact').textContent.includes('电话')")

    # accept an expert with free capacity, with a comment
    chosen = None
    for index in range(experts.count()):
        card = experts.nth(index)
        load, capacity = map(int, re.search(r"负荷 (\d+)/(\d+)", card.inner_text()).groups())
        if load < capacity and card.locator("button:has-text('接受')").count():
            chosen = (card.get_attribute("data-id"), load, capacity, card)
            break
    assert chosen is not None, "no expert with free capacity among the recommendations"
    expert_id, load, capacity, card = chosen

    # reject another recommendation, with a comment: recorded as a decision
    other = page.locator("#results section[aria-label='资源'] .match").first
    rejected_id = other.get_attribute("data-id")
    other.locator(".decision input").fill("场地太远")
    other.locator("button:has-text('不合适')").click()
    page.wait_for_function("document.querySelector('#status').textContent.includes('已记录决定：不合适')")
    assert "已记录：不合适" in other.inner_text()
    audit = api(base, tokens["admin"], "/v1/admin/audit?action=feedback")["items"]
    assert any(e["detail"]["target_id"] == rejected_id and e["detail"]["decision"] == "rejected" for e in audit)
    card.locator(".decision input").fill("与机构负责人电话沟通后确认")
    card.locator("button:has-text('接受')").click()
    page.wait_for_function("document.querySelector('#status').textContent.includes('已记录决定')")
    page.wait_for_selector(f"#need-engagements li:has-text('{expert_id}')")
    assert api(base, tokens["coordinator"], f"/v1/experts/{expert_id}")["open_engagements"] == load + 1
    shot(page, "04-accepted")

    # reload: the engagement is recorded and the expert's load has changed
    page.reload()
    page.wait_for_selector(f"#need-engagements li:has-text('{expert_id}')")
    assert "进行中" in page.inner_text(f"#need-engagements li:has-text('{expert_id}')")
    engagements = api(base, tokens["coordinator"], f"/v1/engagements?need_id={need_id}&expert_id={expert_id}")
    assert [e["status"] for e in engagements["items"]] == ["open"]
    page.goto(base + "/#engagements")
    page.fill("#e-expert", expert_id)
    page.click("#eng-filters button[type=submit]")
    page.wait_for_function(
        f"document.querySelector('#eng-summary').textContent.includes('负荷 {load + 1}/{capacity}')"
    )
    assert need_id in page.inner_text("#eng-table")
    shot(page, "05-engagements-of-expert")
    org_id = api(base, tokens["coordinator"], f"/v1/needs/{need_id}")["org_id"]
    page.fill("#e-expert", "")
    page.select_option("#e-org", org_id)
    total = api(base, tokens["coordinator"], f"/v1/engagements?org_id={org_id}")["total"]
    page.click("#eng-filters button[type=submit]")
    page.wait_for_function(f"document.querySelector('#eng-summary').textContent == '共 {total} 项合作'")
    assert need_id in page.inner_text("#eng-table")

    # complete it from the need's page
    open_match(page, need_id)
    page.click(f"#need-engagements li:has-text('{expert_id}') button:has-text('完成')")
    # 完成 asks for the follow-up; completing now leaves it waiting (issue 17)
    page.click(f"#need-engagements li:has-text('{expert_id}') form.outcome-form button:has-text('先完成，稍后回访')")
    page.wait_for_function("document.querySelector('#status').textContent.includes('已记录：完成')")
    page.wait_for_selector(f"#need-engagements li:has-text('{expert_id}') .state.completed")
    after = api(base, tokens["coordinator"], f"/v1/engagements?need_id={need_id}&expert_id={expert_id}")
    assert [e["status"] for e in after["items"]] == ["completed"]
    assert api(base, tokens["coordinator"], f"/v1/experts/{expert_id}")["open_engagements"] == load
    shot(page, "06-completed")

    # a need typed in freely
    page.goto(base + "/#match")
    page.fill("#need-text", "我们是新成立的社工站，不清楚個案管理和个案工作的区别，想请老师指导转介流程")
    page.click("#match-button")
    page.wait_for_selector("#results .match")
    assert page.locator("#need-normalised mark").count() > 0
    assert "自由填写的需求不能记录决定" in page.inner_text("#results")
    shot(page, "07-free-text")

    # export the recommendations as XLSX
    with page.expect_download() as download_info:
        page.click("#export-button")
    download = download_info.value
    assert download.suggested_filename == "matches.xlsx"
    book = load_workbook(io.BytesIO(Path(download.path()).read_bytes()))
    rows = list(book["推荐"].iter_rows(values_only=True))
    assert rows[0][:4] == ("类型", "排名", "编号", "名称") and len(rows) > 1
    shown = page.locator("#results section[aria-label='专家'] .match").first.get_attribute("data-id")
    assert rows[1][2] == shown

    # an API error is shown as a message, not a blank page
    page.goto(base + "/#match/N9999")
    page.wait_for_selector("#error:not([hidden])")
    assert "N9999" in page.inner_text("#error")
    shot(page, "08-api-error")
    assert page.errors == []


def test_empty_results_and_the_loading_indicator(browser, site) -> None:
    base, tokens = site
    page = new_page(browser, base, DESKTOP, tokens["coordinator"])
    page.fill("#f-q", "ΩΨΦ")
    page.click("#needs-filters button[type=submit]")
    page.wait_for_selector("#needs-table td.empty")
    assert "没有符合条件的需求" in page.inner_text("#needs-table")

    # a slow answer shows the loading indicator until it arrives
    held = []  # the request is held (then sent on to the server) so the indicator can be seen
    page.route("**/v1/match", lambda route: held.append(route))
    page.goto(base + "/#match")
    page.fill("#need-text", "社区养老服务的志愿者怎么管理")
    page.click("#match-button")
    page.wait_for_selector("#loading:not([hidden])")
    assert page.get_attribute("#main", "aria-busy") == "true"
    shot(page, "09-loading")
    held[0].continue_()
    page.wait_for_selector("#results .match")
    assert page.locator("#loading").is_hidden()
    assert page.errors == []


def test_analyst_at_phone_width_sees_no_decisions_or_contacts(browser, site) -> None:
    base, tokens = site
    page = new_page(browser, base, PHONE, tokens["analyst"])
    assert "分析员" in page.inner_text("#account")
    open_match(page, "N0005")
    assert page.locator("#results button:has-text('接受')").count() == 0
    assert page.locator("#results .contact").count() == 0
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    shot(page, "10-phone-match")
    page.click("nav a[data-view='overview']")
    page.wait_for_selector("#supply-chart .bar-row")
    overview = api(base, tokens["analyst"], "/v1/overview?weakest=15")
    assert page.locator("#weak-table tbody tr").count() == len(overview["weakest"])
    first = overview["weakest"][0]
    assert first["need_id"] in page.inner_text("#weak-table tbody tr:first-child")
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]
    shot(page, "11-phone-overview")
    assert page.errors == []


def test_overview_at_desktop_width_shows_demand_against_supply(browser, site) -> None:
    base, tokens = site
    page = new_page(browser, base, DESKTOP, tokens["coordinator"])
    page.click("nav a[data-view='overview']")
    page.wait_for_selector("#supply-chart .bar-row")
    overview = api(base, tokens["coordinator"], "/v1/overview")
    shown = [c for c in overview["categories"] if c["open_needs"] or c["free_places"]]
    assert page.locator("#supply-chart .bar-row").count() == len(shown)
    row = page.locator("#supply-chart .bar-row").first
    assert row.locator(".bar.needs").inner_text() == str(shown[0]["open_needs"])
    assert row.locator(".bar.places").inner_text() == str(shown[0]["free_places"])
    # a weak need's 匹配 link leads to its match view
    page.locator("#weak-table a.action").first.click()
    page.wait_for_selector("#results .match")
    assert overview["weakest"][0]["need_id"] in page.inner_text("#need-heading")
    shot(page, "12-overview-to-match")
    assert page.errors == []


def test_admin_is_told_to_use_another_key(browser, site) -> None:
    base, tokens = site
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(base + "/")
    page.fill("#api-key", tokens["admin"])
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("text=此账户不能查看匹配")
    assert page.locator("nav").count() == 0
    context.close()


def test_keyboard_alone_reaches_the_views(browser, site) -> None:
    base, tokens = site
    page = new_page(browser, base, DESKTOP, tokens["coordinator"])
    page.wait_for_selector("#needs-table tbody tr")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")  # past the sign-out button to the navigation
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "需求列表"
    for _ in range(3):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "基地概览"
    page.keyboard.press("Enter")
    page.wait_for_selector("#supply-chart .bar-row")
    assert page.get_attribute("nav a[data-view='overview']", "aria-current") == "page"
    assert page.errors == []


TYPED_NEED = "我们同心社工刚接手一批困境儿童的个案，想请老师指导个案管理和转介流程，最好能到雄县现场督导"


def chips(page) -> list[str]:
    return page.locator("#tag-chips .chip").evaluate_all("items => items.map((item) => item.dataset.tag)")


def match_and_answer(page, selector: str) -> tuple[dict, dict]:
    """Click ``selector``, and return the ``POST /v1/match`` request body and its answer."""
    with page.expect_response(lambda r: r.url.endswith("/v1/match") and r.request.method == "POST") as info:
        page.click(selector)
    response = info.value
    assert response.status == 200, response.text()
    page.wait_for_function("document.querySelector('#status').textContent.includes('匹配完成')")
    return response.request.post_data_json, response.json()


def test_coordinator_edits_the_tags_of_a_typed_need_saves_it_and_decides(browser, site) -> None:
    """At phone width, mostly with the keyboard: tags added and removed, matched again, saved, decided."""
    base, tokens = site
    page = new_page(browser, base, PHONE, tokens["coordinator"])
    page.goto(base + "/#match")
    page.fill("#need-text", TYPED_NEED)
    sent, answer = match_and_answer(page, "#match-button")
    assert "tags" not in sent  # absent: the service infers them from the text
    assert page.locator("#tag-editor").is_visible()
    assert chips(page) == answer["need"]["tags"]
    assert "自由填写的需求不能记录决定（请先保存为需求）" in page.inner_text("#results")

    # add two tags from the taxonomy with the keyboard: the picker keeps the focus for the next one
    first, second = [t for t in ("危机干预", "心理援助", "儿童保护", "专业督导") if t not in chips(page)][-2:]
    for tag in (first, second):
        page.select_option("#tag-add", tag)
        page.focus("#tag-add-button")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#tag-chips .chip[data-tag='{tag}']")
        assert page.evaluate("document.activeElement.id") == "tag-add"
    assert page.locator(f"#tag-add option[value='{second}']").is_disabled()
    # …and remove the first again: Enter on its ×, the focus moves on to a neighbour
    page.focus(f"#tag-chips button[aria-label='移除标签 {first}']")
    page.keyboard.press("Enter")
    assert first not in chips(page)
    focused = page.evaluate("[document.activeElement.id, document.activeElement.closest('#tag-chips') !== null]")
    assert focused[0] == "tag-add" or focused[1]
    assert "已移除标签" in page.inner_text("#status")
    expected = [*answer["need"]["tags"], second]
    assert chips(page) == expected
    shot(page, "13-phone-tags-edited")

    # 重新匹配 sends exactly the chips, and the service uses them
    sent, answer = match_and_answer(page, "#rematch-button")
    assert sent["text"] == TYPED_NEED and sent["tags"] == expected
    assert answer["need"]["tags"] == expected and chips(page) == expected
    assert any(second in r["reasons"]["tags"] for items in answer["results"].values() for r in items)

    # 保存为需求: not for a text edited since its match (its tags were for the text matched)
    page.fill("#need-text", TYPED_NEED + "，还有志愿者管理")
    page.click("#save-need-button")
    page.wait_for_selector("#error:not([hidden])")
    assert "需求描述已修改" in page.inner_text("#error") and page.locator("#save-need-form").is_hidden()
    page.fill("#need-text", TYPED_NEED)
    # the organisation named in the text is offered, the title is the first clause
    page.focus("#save-need-button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#save-need-form:not([hidden])")
    assert page.locator("#error").is_hidden()
    assert page.get_attribute("#save-need-button", "aria-expanded") == "true"
    organisation = api(base, tokens["coordinator"], "/v1/organisations/O004")
    assert "同心" in organisation["name"] and page.input_value("#save-org") == "O004"
    assert "同心" in page.inner_text("#save-org-hint")
    assert page.input_value("#save-title") == "我们同心社工刚接手一批困境儿童的个案"
    assert page.evaluate("document.activeElement.id") == "save-title"
    # a title of blanks is refused by the API, and its detail is shown
    page.fill("#save-title", "   ")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "title" in page.inner_text("#error") and page.locator("#save-need-form").is_visible()
    page.fill("#save-title", "困境儿童个案管理与转介督导")
    page.keyboard.press("Enter")
    page.wait_for_function("/^#match\\/N\\d+$/.test(location.hash)")
    need_id = page.evaluate("location.hash").split("/")[1]
    page.wait_for_selector(f"#need-heading:has-text('{need_id}')")
    page.wait_for_selector("#results .match button:has-text('不合适')")
    assert f"已保存为需求 {need_id}" in page.inner_text("#status")
    assert page.locator("#tag-editor").is_hidden() and page.locator("#save-need-form").is_hidden()
    stored = api(base, tokens["coordinator"], f"/v1/needs/{need_id}")
    assert (stored["org_id"], stored["description"]) == ("O004", TYPED_NEED)
    assert stored["title"] == "困境儿童个案管理与转介督导"
    assert stored["tags"] == expected and stored["status"] == "open" and stored["urgency"] == "medium"
    created = api(base, tokens["admin"], f"/v1/admin/audit?action=create&kind=needs&record_id={need_id}")["items"]
    assert len(created) == 1 and created[0]["role"] == "coordinator"
    shot(page, "14-phone-saved-need")

    # the stored need takes decisions
    card = page.locator("#results section[aria-label='资源'] .match").first
    resource_id = card.get_attribute("data-id")
    card.locator(".decision input").fill("太远")
    card.locator("button:has-text('不合适')").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#status').textContent.includes('已记录决定：不合适')")
    audit = api(base, tokens["admin"], "/v1/admin/audit?action=feedback")["items"]
    assert any(
        e["detail"] == {"need_id": need_id, "target_type": "resource", "target_id": resource_id, "decision": "rejected"}
        for e in audit
    )
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    assert page.errors == []


def test_inferred_tags_are_chips_the_coordinator_removes_before_matching_again(browser, site) -> None:
    base, tokens = site
    page = new_page(browser, base, DESKTOP, tokens["coordinator"])
    page.goto(base + "/#match")
    page.fill("#need-text", TYPED_NEED)
    sent, answer = match_and_answer(page, "#match-button")
    assert "tags" not in sent
    inferred = {t["tag"]: t["probability"] for t in answer["need"]["inferred_tags"]}
    used = answer["need"]["tags"]
    assert used and set(used) <= set(inferred) and "个案管理" in used
    assert chips(page) == used
    for tag in used:  # each chip shows how sure the inference is (rounded as JavaScript's Math.round)
        assert f"{math.floor(100 * inferred[tag] + 0.5)}%" in page.inner_text(f"#tag-chips .chip[data-tag='{tag}']")
    shot(page, "15-inferred-chips")

    # remove an inferred chip with the keyboard, then match again: it stays removed
    removed = used[0]
    page.focus(f"#tag-chips button[aria-label='移除标签 {removed}']")
    page.keyboard.press("Enter")
    kept = used[1:]
    assert chips(page) == kept
    sent, answer = match_and_answer(page, "#rematch-button")
    assert sent["tags"] == kept and answer["need"]["tags"] == kept
    assert not answer["need"].get("inferred_tags")  # given tags: nothing inferred
    assert chips(page) == kept

    # without any chip the request says so: tags [] (not absent, which would infer them again)
    for tag in kept:
        page.click(f"#tag-chips button[aria-label='移除标签 {tag}']")
    sent, answer = match_and_answer(page, "#rematch-button")
    assert sent["tags"] == [] and answer["need"]["tags"] == [] and chips(page) == []
    assert "只按文本匹配" in page.inner_text("#tags-note")
    assert page.errors == []
