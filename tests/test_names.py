"""Names as a field: known-item search by every form of a name, the own organisation never named, and
reasons a coordinator can read (whole words, no fragments)."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import load_libraries
from matcher.matching.estimator import build_matcher
from matcher.matching.names import mask_organisation, name_forms, organisation_forms
from matcher.quality.known_item import FORMS, known_item_rates, known_item_table, query_forms
from matcher.text.normalise import normalise
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def libs():
    return load_libraries(ROOT / "data")


@pytest.fixture(scope="module")
def trained(libs):
    """Fitted as ``matcher train`` fits it, with the re-ranker forced to serve every type (no gate)."""
    model = build_matcher({"reranker__gate": False}).fit(targets_frame(libs))
    return model.fit_tagger(needs_frame(libs), libs.taxonomy).fit_reranker(libs)


def test_query_forms_and_name_forms() -> None:
    forms = query_forms("“心语小屋”儿童关爱服务项目")
    assert forms == {
        "as_written": "“心语小屋”",
        "traditional": "“心語小屋”",
        "brand_bare": "心语小屋",
        "no_suffix": "“心语小屋”儿童关爱",
    }
    assert query_forms("《个案管理工作手册》")["brand_bare"] == "个案管理工作手册"
    assert query_forms("孵化基地小组活动室")["brand_bare"] == "孵化基地小组活动室"
    assert "心语小屋" in name_forms("“心语小屋”儿童关爱服务项目")
    assert "护苗行动" in name_forms("“护苗行动”——未成年人关爱保护服务项目")
    assert "红心" in organisation_forms("红心社会工作服务中心")
    assert "同心" in organisation_forms("雄县同心社会工作服务中心")


@pytest.mark.parametrize("target_type", ["project", "resource"])
def test_every_item_is_found_by_every_form_of_its_name(trained, target_type) -> None:
    """>= 95 % success@3 for each form over every item the hard rules allow, re-ranked and by the base score."""
    plain = copy.copy(trained)
    plain.reranker_ = None
    for model in (trained, plain):
        rates = known_item_rates(model, target_type, ks=(3,)).set_index("form")
        assert set(rates.index) == set(FORMS)
        for form in FORMS:
            assert rates.loc[form, "n"] == (model.index_[target_type].available & (model.index_[target_type].free > 0)).sum()
            assert rates.loc[form, "success"] >= 0.95, (target_type, form, rates.loc[form, "success"])


def test_the_misses_are_brands_several_items_share(trained) -> None:
    """Four projects carry the brand 心语小屋 and four 一老一小: a bare brand cannot put all four in a top 3."""
    table = known_item_table(trained, "project")
    missed = table.loc[table["rank"] == 0]
    names = trained.targets("project").set_index("id")["name"]
    for target_id in missed["target_id"]:
        brand = query_forms(names[target_id])["brand_bare"]
        assert sum(brand in n for n in names) > 3, (target_id, brand)


def test_experts_are_found_by_their_names(trained) -> None:
    rates = known_item_rates(trained, "expert", ks=(1,)).set_index("form")
    assert rates.loc["as_written", "success"] >= 0.95
    found = trained.recommend({"text": "想请沈桂芳老师讲讲养老服务"}, k=1, target_types=["expert"])["expert"][0]
    assert found["id"] == "E0042"
    term = found["reasons"]["terms"][0]
    assert term["term"] == "沈桂芳" and term["spans"] == [[2, 5]]
    assert found["reasons"]["components"]["name"] > 0


def test_the_needs_own_organisation_is_never_a_name(trained, libs) -> None:
    text = "我们红心社会工作服务中心的红心社工项目想学习党建引领社区服务的经验"
    owner = libs.organisations.loc[libs.organisations["name"].str.contains("红心"), "name"].iloc[0]
    assert mask_organisation(normalise(text), owner).count("\0") >= len("红心社会工作服务中心")
    project = trained.targets("project").set_index("name").index.str.contains("红心社工")
    red = trained.targets("project").loc[project, "id"].iloc[0]
    stranger = trained.recommend({"text": text, "tags": []}, k=50, target_types=["project"])["project"]
    own = trained.recommend({"text": text, "tags": [], "org_name": owner}, k=50, target_types=["project"])["project"]
    named = {r["id"]: r["reasons"]["components"]["name"] for r in stranger}
    assert named.get(red, 0) > 0  # typed by anyone else, 红心社工 names the project
    for result in own:
        assert result["reasons"]["components"]["name"] == 0
        assert all("红心" not in t["term"] and t["term"] != "社会工作服务中心" for t in result["reasons"]["terms"])


@pytest.mark.parametrize(
    "text",
    [
        "我们机构刚成立，分不清个案工作和个案管理，想请专家指导转介流程",
        "swot分析 战略规划",
        "個案(gè àn)管理怎么和转介衔接",
        "社会组织可以怎样参与社区治理",
    ],
)
def test_reasons_show_whole_words_only(trained, text) -> None:
    need = normalise(text)
    for results in trained.recommend({"text": text}, k=5).values():
        for result in results:
            for term in result["reasons"]["terms"]:
                word = term["term"]
                assert len(word) >= 2, word  # never a lone character
                assert word not in {"sw", "wo", "ot", "务中", "会工", "中心", "组织"}
                assert term["spans"], word
                for start, end in term["spans"]:
                    assert need[start:end] == word


def test_pinyin_annotations_with_spaces_and_apostrophes_are_removed() -> None:
    assert normalise("個案(gè àn)管理") == "个案管理"
    assert normalise("西安(xī'ān)") == "西安"
    assert normalise("個案（gè àn）管理") == "个案管理"
    assert normalise("社会组织(NGO)") == "社会组织(ngo)"
    assert normalise("项目(2023)") == "项目(2023)"
    text = "首頁(yè)個案(gè àn)管理"
    assert normalise(normalise(text)) == normalise(text)


def test_names_score_the_same_in_the_batch_and_the_api_paths(trained) -> None:
    needs = pd.DataFrame({"id": ["a", "b"], "text": ["心语小屋", "想借孵化基地多功能培训教室办培训"], "tags": None})
    table = trained.match(needs, k=3)
    for need in needs.to_dict("records"):
        for target_type, items in trained.recommend(need, k=3).items():
            rows = table[(table["need_id"] == need["id"]) & (table["target_type"] == target_type)]
            assert rows["target_id"].tolist() == [r["id"] for r in items]
            assert rows["score"].tolist() == [r["score"] for r in items]
