"""Personal data in need texts and profiles: redacted in the index, in logs and for analysts; kept as written."""

from __future__ import annotations

import json
import logging
import re

import pytest

from matcher.text.privacy import index_text, redact_item
from matcher.text.privacy import redact as redacted_text
from matcher.web.monitoring import JsonFormatter
from tests.access_support import bearer, copy_database, make_keys

# realistic numbers: a Hebei mobile (China Mobile 139), a Baoding landline, an 18-digit resident ID
# of Xiong County (130638) with a valid check digit, a UnionPay debit card
PHONE = "13931266078"
LANDLINE = "0312-5328816"
ID_CARD = "130638198807154529"
ID_CARD_X = "13062919900301002X"
EMAIL = "wangfang.xa@163.com"
BANK = "6217 0000 1234 5678 901"
NEED = (
    f"我们是雄县昝岗镇的社工站，服务对象王阿姨（身份证{ID_CARD}）独居，女儿电话{PHONE}，"
    f"办公室{LANDLINE}，邮箱{EMAIL}，低保打卡账户{BANK}。想请个案管理专家指导转介和危机干预。"
)
DIGITS = re.compile(r"\d{7,}")


def test_every_kind_of_number_is_redacted() -> None:
    shown, indexed = redacted_text(NEED), index_text(NEED)
    for secret in (PHONE, "5328816", ID_CARD, EMAIL, "1234 5678"):
        assert secret not in shown and secret not in indexed
    for label in ("[电话]", "[身份证号]", "[邮箱]", "[银行卡号]"):
        assert label in shown
    # the index sees same-length masks of punctuation, which carry no weight
    assert "[**]" in indexed and "[****]" in indexed and "电话]" not in indexed and len(indexed) == len(shown)
    assert "个案管理专家指导转介" in indexed


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("电话：１３９３１２６６０７８", "[电话]"),  # full-width digits, as some input methods type them
        (f"身份证号：{ID_CARD_X.lower()}", "[身份证号]"),
        ("联系 +86 139-3126-6078", "[电话]"),
    ],
)
def test_full_width_and_formatted_numbers_are_found(raw, label) -> None:
    shown = redacted_text(raw)
    assert label in shown and not DIGITS.search(shown.replace(" ", "").replace("-", ""))


def test_ordinary_text_is_kept() -> None:
    text = "专长：个案管理；2023年服务1,200人次，邮编071700"
    assert index_text(text) == text == redacted_text(text)


def test_redact_item_drops_contacts_and_redacts_nested_texts() -> None:
    item = {"id": "E1", "phone": PHONE, "email": EMAIL, "bio": f"电话{PHONE}", "tags": [f"{EMAIL}"], "capacity": 3}
    assert redact_item(item) == {"id": "E1", "bio": "电话[电话]", "tags": ["[邮箱]"], "capacity": 3}


def test_match_never_uses_or_shows_personal_data(client, caplog) -> None:
    caplog.set_level(logging.INFO)
    body = client.post("/v1/match", json={"text": NEED, "k": 5}).get_json()
    shown = json.dumps(body, ensure_ascii=False)
    for secret in (PHONE, ID_CARD, EMAIL, "5328816"):
        assert secret not in shown
    assert "[电话]" in body["need"]["text"] and "[身份证号]" in body["need"]["text"]
    terms = [t["term"] for results in body["results"].values() for r in results for t in r["reasons"]["terms"]]
    assert terms and not any(ch.isdigit() for term in terms for ch in term)
    # the same need without the numbers matches the same targets with the same scores
    clean = client.post("/v1/match", json={"text": index_text(NEED), "k": 5}).get_json()
    assert clean["results"] == body["results"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "matched need <free text>" in logged and "王阿姨" not in logged and PHONE not in logged


def test_profiles_are_indexed_without_personal_data(make_app, trained, tmp_path) -> None:
    url = copy_database(trained["database"], tmp_path / "privacy.sqlite3")
    client = make_app(DATABASE_URL=url).test_client()
    expert = {
        "id": "E9401",
        "name": "赵敏",
        "specialties": ["心理援助"],
        "bio": f"危机干预与哀伤辅导督导，预约电话{PHONE}，身份证{ID_CARD}。",
        "counties": ["雄县"],
        "phone": PHONE,
    }
    assert client.post("/v1/experts", json=expert).status_code == 201
    model, _ = client.application.extensions["matcher"].model()
    index = model.index_["expert"]
    row = list(index.ids).index("E9401")
    docs = [doc for doc, owner in zip(index.docs, index.owners, strict=True) if owner == row]
    assert docs and any("危机干预" in doc for doc in docs)
    assert not any(PHONE in doc or ID_CARD in doc for doc in docs)
    # a need that only shares the phone number with the expert does not find the expert by it
    body = client.post("/v1/match", json={"text": f"请联系{PHONE}", "targets": ["expert"], "k": 50}).get_json()
    assert "E9401" not in [r["id"] for r in body["results"]["expert"]]
    found = client.post("/v1/match", json={"text": "危机干预 哀伤辅导", "targets": ["expert"], "k": 50}).get_json()
    assert "E9401" in [r["id"] for r in found["results"]["expert"]]
    # the stored record keeps what was written
    assert PHONE in client.get("/v1/experts/E9401").get_json()["bio"]


def test_need_texts_are_redacted_for_analysts_only(make_app, trained, tmp_path) -> None:
    url = copy_database(trained["database"], tmp_path / "needs.sqlite3")
    tokens = make_keys(url)
    client = make_app(DATABASE_URL=url).test_client()
    coordinator, analyst = bearer(tokens["coordinator"]), bearer(tokens["analyst"])
    need = {"id": "N9401", "org_id": "O001", "title": "独居老人个案转介", "description": NEED, "tags": ["个案管理"]}
    assert client.post("/v1/needs", json=need, headers=coordinator).status_code == 201
    assert client.get("/v1/needs/N9401", headers=coordinator).get_json()["description"] == NEED
    seen = client.get("/v1/needs/N9401", headers=analyst).get_json()["description"]
    assert PHONE not in seen and ID_CARD not in seen and EMAIL not in seen and "[身份证号]" in seen
    matches = client.get("/v1/needs/N9401/matches?k=3", headers=analyst).get_json()
    assert ID_CARD not in json.dumps(matches, ensure_ascii=False)


def test_json_logs_redact_cut_and_carry_the_request_id(client, caplog) -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("matcher.x", logging.INFO, __file__, 1, "need %s", (NEED * 40,), None)
    line = json.loads(formatter.format(record))
    assert PHONE not in line["message"] and len(line["message"]) < 2100 and "cut" in line["message"]
    caplog.set_level(logging.INFO, logger="matcher.access")
    response = client.get("/v1/experts?q=secret-query-value&per_page=1", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    access = next(r for r in caplog.records if r.name == "matcher.access")
    line = json.loads(formatter.format(access))
    assert line["request_id"] == "abc-123" and line["route"] == "/v1/experts" and line["status"] == 200
    assert line["query"] == "per_page,q" and "secret-query-value" not in json.dumps(line)
    problem = client.post("/v1/match", json={"k": 3}, headers={"X-Request-ID": "bad id with spaces"}).get_json()
    assert problem["request_id"] != "bad id with spaces" and len(problem["request_id"]) == 32
