"use strict";
// The match page: POST /v1/match and show the ranked targets with their reasons.
// Signed in with a key, the browser holds only an HttpOnly session cookie; writes carry the CSRF token.
const FEATURE_NAMES = {
  text: "文本相似", text_share: "相对文本相似", char: "字符相似", word: "词语相似", semantic: "语义相似",
  tags: "标签匹配", jaccard: "标签重合", region: "地区一致", load_fraction: "当前负荷",
  acceptance_rate: "过往采纳率", log_shown: "推荐次数", familiarity: "过往评价", kind: "类型", log_rank: "展示位置",
};
const TYPE_NAMES = { expert: "专家", resource: "资源", project: "示范项目" };
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const form = document.getElementById("match-form");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// The need text with the matched terms' spans wrapped in <mark>.
function highlighted(text, terms) {
  const spans = terms.flatMap((t) => t.spans).sort((a, b) => a[0] - b[0]);
  const out = el("span");
  let at = 0;
  for (const [start, end] of spans) {
    if (start < at) continue;
    out.append(text.slice(at, start), el("mark", text.slice(start, end)));
    at = end;
  }
  out.append(text.slice(at));
  return out;
}

function reasonList(reasons) {
  const list = el("ul", undefined, "reasons");
  if (reasons.terms.length) list.append(el("li", "匹配词：" + reasons.terms.map((t) => `${t.term}（${t.weight.toFixed(3)}）`).join("、")));
  if (reasons.tags.length) list.append(el("li", "匹配标签：" + reasons.tags.join("、")));
  list.append(el("li", reasons.region.match ? `服务地区一致（${reasons.region.counties.join("、")}）` : "服务地区不同或未知"));
  const c = reasons.components;
  list.append(el("li", `基础分：文本 ${c.text.toFixed(3)} ＋ 标签 ${c.tags.toFixed(3)} ＋ 地区 ${c.region.toFixed(3)}`));
  if (reasons.rerank) {
    // the learnt re-ranker turned the base score into the shown score; say what moved it most
    const moved = reasons.rerank.features.map((f) => `${FEATURE_NAMES[f.feature.split(":")[0]] || f.feature}${f.effect >= 0 ? "↑" : "↓"}`);
    list.append(el("li", `学习排序（依据过往协调员决定）：基础分 ${reasons.rerank.base.toFixed(3)} → 最终得分；主要因素：${moved.join("、")}`));
  }
  return list;
}

function render(body) {
  results.replaceChildren();
  document.getElementById("need").hidden = false;
  const allTerms = Object.values(body.results).flat().flatMap((m) => m.reasons.terms);
  document.getElementById("need-normalised").replaceChildren(highlighted(body.need.text, allTerms));
  for (const [type, matches] of Object.entries(body.results)) {
    const section = el("section");
    section.append(el("h2", `${TYPE_NAMES[type] || type}（${matches.length}）`));
    if (!matches.length) section.append(el("p", "没有符合条件的推荐。"));
    for (const m of matches) {
      const item = el("article", undefined, "match");
      const title = el("h3", `${m.name}`);
      title.append(el("span", m.score.toFixed(3), "score"));
      item.append(title, el("small", m.id), reasonList(m.reasons));
      section.append(item);
    }
    results.append(section);
  }
  statusLine.textContent = `模型版本 ${body.model_version}`;
}

function headers() {
  const sent = { "Content-Type": "application/json" };
  if (CSRF) sent["X-CSRF-Token"] = CSRF;
  return sent;
}

const signIn = document.getElementById("sign-in-form");
if (signIn) {
  signIn.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = document.getElementById("api-key").value.trim();
    statusLine.className = "";
    statusLine.textContent = "正在登录…";
    const response = await fetch("/session", { method: "POST", headers: headers(), body: JSON.stringify({ key }) });
    if (response.ok) { window.location.reload(); return; }
    const body = await response.json().catch(() => ({}));
    statusLine.className = "error";
    statusLine.textContent = `登录失败：${body.detail || response.statusText}`;
  });
}

const signOut = document.getElementById("sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    await fetch("/session", { method: "DELETE", headers: headers() });
    window.location.reload();
  });
}

if (form) form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = document.getElementById("need-text").value.trim();
  const needId = document.getElementById("need-id").value.trim();
  const county = document.getElementById("county").value;
  const payload = { k: Number(document.getElementById("k").value) || 5 };
  if (needId) payload.need_id = needId; else payload.text = text;
  if (county) payload.filters = { county };
  statusLine.className = "";
  statusLine.textContent = "正在匹配…";
  try {
    const response = await fetch("/v1/match", {
      method: "POST", headers: headers(), body: JSON.stringify(payload),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.title || response.statusText);
    render(body);
  } catch (error) {
    results.replaceChildren();
    statusLine.className = "error";
    statusLine.textContent = `出错了：${error.message}`;
  }
});
