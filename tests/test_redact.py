"""Redaction of realistic Chinese personal data."""

from __future__ import annotations

import pytest

from matcher.text.privacy import redact


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("联系人王女士，电话13812345678，谢谢", "联系人王女士，电话[电话]，谢谢"),
        ("手机：138 1234 5678 或 +86 139-1234-5678", "手机：[电话] 或 [电话]"),
        ("办公室0312-5678901", "办公室[电话]"),
        ("身份证号130629198503150012，住址雄县", "身份证号[身份证号]，住址雄县"),
        ("身份证13062919850315001X", "身份证[身份证号]"),
        ("邮箱 wang.li@example.org。", "邮箱 [邮箱]。"),
        ("捐款账户 6222 0212 3456 7890 123", "捐款账户 [银行卡号]"),
        ("卡号6217000012345678", "卡号[银行卡号]"),
        # full-width digits and @, and a full-width space inside the number: found, the rest kept as written
        ("电话：１３８\u3000１２３４ ５６７８，ＳＷＯＴ", "电话：[电话]，ＳＷＯＴ"),
        ("邮箱 ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ，全角", "邮箱 [邮箱]，全角"),
    ],
)
def test_personal_data_is_replaced(raw: str, expected: str) -> None:
    assert redact(raw) == expected


@pytest.mark.parametrize(
    "text",
    ["2023年10月24日服务了550人", "项目经费700万元", "第01版", "服务1,200人次，开展36节小组", "邮编071700"],
)
def test_ordinary_numbers_are_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", ["", "社会工作个案管理与小组工作，ＳＷＯＴ分析。", "no digits here", "全角　空格"])
def test_texts_without_digits_or_at_come_back_unchanged(text: str) -> None:
    assert redact(text) is text  # nothing to look for: the same object
