"use strict";
// The coordinators' page: plain JavaScript over the JSON API, no build step.
// Views (chosen by the URL's #hash): #needs, #match[/NEED_ID], #engagements, #overview.
// Signed in with a key, the browser holds only an HttpOnly session cookie; writes carry the CSRF token.

const FEATURE_NAMES = {
  text: "文本相似", text_share: "相对文本相似", char: "字符相似", word: "词语相似", semantic: "语义相似",
  tags: "标签匹配", jaccard: "标签重合", region: "地区一致", load_fraction: "当前负荷",
  acceptance_rate: "过往采纳率", log_shown: "推荐次数", familiarity: "过往评价", kind: "类型", log_rank: "展示位置",
};
const TYPE_NAMES = { expert: "专家", resource: "资源", project: "示范项目" };
const URGENCY = { high: "紧急", medium: "一般", low: "不急" };
const NEED_STATUS = { open: "待匹配", matched: "已匹配", closed: "已关闭" };
const ENGAGEMENT_STATUS = { open: "进行中", completed: "已完成", cancelled: "已取消" };
const DECISIONS = { accepted: "接受", rejected: "不合适", completed: "完成", cancelled: "取消" };
const GOAL_MET = { yes: "目标达成", partly: "部分达成", no: "未达成" };

const body = document.body;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const CAN_DECIDE = body.dataset.canDecide === "1";
const CAN_CONTACT = body.dataset.canContact === "1";
const CAN_EDIT = body.dataset.canEdit === "1";
const MAX_TAGS = 10; // a stored need holds at most 10 tags
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ small helpers
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, onClick, className) {
  const node = el("button", text, className);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function say(message) {
  $("error").hidden = true;
  $("status").textContent = message;
}

function fail(error) {
  $("status").textContent = "";
  $("error").textContent = `出错了：${error.message}`;
  $("error").hidden = false;
}

function day(iso) {
  return iso ? iso.slice(0, 10) : "";
}

// The text with the [start, end) spans wrapped in <mark> (overlaps and duplicates skipped).
function highlighted(text, spans) {
  const out = el("span");
  let at = 0;
  for (const [start, end] of [...spans].sort((a, b) => a[0] - b[0] || b[1] - a[1])) {
    if (start < at) continue;
    out.append(text.slice(at, start), el("mark", text.slice(start, end)));
    at = end;
  }
  out.append(text.slice(at));
  return out;
}

// ------------------------------------------------------------------ the API
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

let pending = 0;
function busy(delta) {
  pending += delta;
  clearTimeout(busy.timer);
  if (pending > 0) {
    busy.timer = setTimeout(() => { $("loading").hidden = false; }, 150); // only slow calls show it
    $("main").setAttribute("aria-busy", "true");
  } else {
    $("loading").hidden = true;
    $("main").removeAttribute("aria-busy");
  }
}

async function api(method, path, payload, { raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  if (CSRF && method !== "GET") headers["X-CSRF-Token"] = CSRF;
  busy(1);
  try {
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    } catch (error) {
      throw new ApiError(0, "无法连接服务器，请检查网络后重试");
    }
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      let detail = problem.detail || problem.title || response.statusText || `HTTP ${response.status}`;
      if (response.status === 401) detail = `请重新登录（${detail}）`;
      throw new ApiError(response.status, detail);
    }
    if (raw) return response;
    return response.status === 204 ? null : await response.json();
  } finally {
    busy(-1);
  }
}

const query = (params) => {
  const kept = Object.entries(params).filter(([, value]) => value !== "" && value !== null && value !== undefined);
  return new URLSearchParams(kept).toString();
};

// Every page of a list (the libraries the page needs to name things are small).
async function everything(path) {
  const items = [];
  for (let page = 1; ; page += 1) {
    const chunk = await api("GET", `${path}${path.includes("?") ? "&" : "?"}per_page=100&page=${page}`);
    items.push(...chunk.items);
    if (items.length >= chunk.total || !chunk.items.length) return items;
  }
}

let organisations = null;
async function orgs() {
  if (!organisations) {
    organisations = new Map((await everything("/v1/organisations")).map((o) => [o.id, o]));
  }
  return organisations;
}

// ------------------------------------------------------------------ views
const extraViews = window.matcherViews || {}; // views of other scripts (events.js): name -> show function
const views = ["needs", "match", "engagements", "overview", ...Object.keys(extraViews)];

function route() {
  const [view, arg] = (location.hash.slice(1) || "needs").split("/");
  const name = views.includes(view) ? view : "needs";
  for (const other of views) $(`view-${other}`).hidden = other !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("error").hidden = true;
  const shown = { needs: showNeeds, match: showMatch, engagements: showEngagements, overview: showOverview, ...extraViews }[name];
  shown(arg ? decodeURIComponent(arg) : undefined).catch(fail);
}

// ---------------------------------------------------------------- needs view
const needsState = { page: 1, perPage: 20 };

async function showNeeds() {
  const form = $("needs-filters");
  const filters = Object.fromEntries(new FormData(form));
  const [page, byId] = await Promise.all([
    api("GET", `/v1/needs?${query({ ...filters, page: needsState.page, per_page: needsState.perPage })}`),
    orgs(),
  ]);
  const rows = $("needs-table").tBodies[0];
  rows.replaceChildren();
  for (const need of page.items) {
    const org = byId.get(need.org_id) || {};
    const row = el("tr");
    const open = el("a", "匹配");
    open.href = `#match/${encodeURIComponent(need.id)}`;
    open.className = "action";
    open.setAttribute("aria-label", `为需求 ${need.id} ${need.title} 匹配`);
    const title = el("td");
    title.append(el("strong", need.title), el("br"), el("small", need.description.slice(0, 60) + (need.description.length > 60 ? "…" : ""), "muted"));
    row.append(
      el("td", need.id, "nowrap"), title, el("td", org.name || need.org_id || "—"), el("td", org.county || "—", "nowrap"),
      el("td", org.stage || "—", "nowrap"), el("td", need.tags.join("、")),
      el("td", URGENCY[need.urgency] || need.urgency, `nowrap urgency ${need.urgency}`),
      el("td", NEED_STATUS[need.status] || need.status, "nowrap"), el("td", undefined, "nowrap"),
    );
    row.lastChild.append(open);
    rows.append(row);
  }
  const pages = Math.max(1, Math.ceil(page.total / needsState.perPage));
  $("needs-count").textContent = page.total ? `共 ${page.total} 条需求` : "";
  if (!page.total) rows.append(emptyRow(9, "没有符合条件的需求，请放宽筛选条件。"));
  labelCells($("needs-table"));
  $("needs-page").textContent = `第 ${needsState.page} / ${pages} 页`;
  $("needs-prev").disabled = needsState.page <= 1;
  $("needs-next").disabled = needsState.page >= pages;
  say("");
}

// Each cell names its column (data-label), so that at phone width a row can be shown as a card.
function labelCells(table) {
  const names = [...table.tHead.rows[0].cells].map((cell) => cell.textContent.trim());
  for (const row of table.tBodies[0].rows) {
    [...row.cells].forEach((cell, i) => { if (!cell.classList.contains("empty")) cell.dataset.label = names[i] || ""; });
  }
}

function emptyRow(span, text) {
  const row = el("tr");
  const cell = el("td", text, "empty");
  cell.colSpan = span;
  row.append(cell);
  return row;
}

// ---------------------------------------------------------------- match view
let current = null; // {needId, request, body, tags (a typed need's chips), inferred}
let notice = ""; // said before the next "匹配完成"

async function showMatch(needId) {
  if (!needId) {
    if (!current || current.needId) resetMatch();
    $("need-text").focus();
    return;
  }
  if (current && current.needId === needId && current.body) return;
  resetMatch();
  const need = await api("GET", `/v1/needs/${encodeURIComponent(needId)}`);
  current = { needId, need };
  $("match-need-label").textContent = `需求 ${need.id}：${need.title}`;
  $("need-text").value = "";
  await runMatch();
  if (document.activeElement === document.body) $("need-heading").focus(); // e.g. the save button is gone
}

function resetMatch() {
  current = null;
  $("results").replaceChildren();
  $("need").hidden = true;
  $("tag-editor").hidden = true;
  closeSave();
  $("export-button").disabled = true;
  $("match-need-label").textContent = "从需求列表打开一条需求，或在下面直接填写需求。";
}

// The body of POST /v1/match. A typed need without `tags` has its tags inferred from the text;
// with `tags` (the chips, possibly none) exactly those are used.
function matchRequest(tags) {
  const request = { k: Number($("k").value) || 5, profiles: true };
  const county = $("county").value;
  if (county) request.filters = { county };
  const text = $("need-text").value.trim();
  if (text) {
    request.text = text;
    if (tags) request.tags = [...tags];
  } else if (current && current.needId) {
    request.need_id = current.needId;
  }
  return request;
}

async function runMatch(tags) {
  const request = matchRequest(tags);
  if (!request.text && !request.need_id) throw new Error("请先填写需求描述，或从需求列表选择一条需求");
  if (request.text && current && current.needId) current = null; // a typed need replaces the opened one
  if (request.text) {
    $("match-need-label").textContent = "自由填写的需求（未保存，不能记录决定）";
    closeSave(); // its organisation and title were offered for the previous text
  }
  const saved = notice;
  notice = "";
  say(`${saved}正在匹配…`);
  const result = await api("POST", "/v1/match", request);
  const before = current || {};
  current = { ...before, needId: request.need_id || null, request, body: result };
  if (request.text) {
    current.tags = [...result.need.tags];
    const inferred = result.need.inferred_tags;
    if (Array.isArray(inferred)) current.inferred = { text: request.text, tags: inferred };
    else if (!(before.inferred && before.inferred.text === request.text)) current.inferred = null;
  }
  await renderMatch();
  const counts = Object.entries(result.results).map(([type, items]) => `${TYPE_NAMES[type]} ${items.length}`);
  say(`${saved}匹配完成：${counts.join("，")}（模型版本 ${result.model_version}）`);
}

async function renderMatch() {
  const { body: result, need } = current;
  const panel = $("need");
  panel.hidden = false;
  $("export-button").disabled = false;
  const byId = await orgs();
  if (current.needId && need) {
    const org = byId.get(need.org_id) || {};
    $("need-heading").textContent = `${need.id} ${need.title}`;
    $("need-meta").textContent = [
      org.name, org.county, org.stage, `类别：${need.tags.join("、") || "—"}`,
      `紧急程度：${URGENCY[need.urgency] || need.urgency}`, `状态：${NEED_STATUS[need.status] || need.status}`,
    ].filter(Boolean).join(" · ");
  } else {
    $("need-heading").textContent = "自由填写的需求";
    $("need-meta").textContent = result.need.counties.length ? `县区：${result.need.counties.join("、")}` : "";
  }
  const spans = Object.values(result.results).flat().flatMap((m) => m.reasons.terms.flatMap((t) => t.spans));
  $("need-normalised").replaceChildren(highlighted(result.need.text, spans));
  renderTags();
  await renderNeedEngagements();

  const engaged = new Set((current.engagements || []).filter((e) => e.status === "open").map((e) => `${e.target_type}:${e.target_id}`));
  const columns = $("results");
  columns.replaceChildren();
  for (const [type, matches] of Object.entries(result.results)) {
    const section = el("section", undefined, "column");
    section.setAttribute("aria-label", TYPE_NAMES[type]);
    section.append(el("h3", `${TYPE_NAMES[type] || type}（${matches.length}）`));
    if (!matches.length) section.append(el("p", "没有符合条件的推荐。可以放宽县区筛选，或在基地概览里查看需要招募的方向。", "empty"));
    matches.forEach((match, index) => section.append(card(type, match, index + 1, engaged.has(`${type}:${match.id}`))));
    columns.append(section);
  }
}

function reasonList(reasons, profile, score) {
  const list = el("ul", undefined, "reasons");
  if (reasons.terms.length) {
    const item = el("li", "匹配词：");
    reasons.terms.forEach((t, i) => {
      if (i) item.append("、");
      item.append(el("mark", t.term));
    });
    list.append(item);
  }
  if (reasons.tags.length) list.append(el("li", `匹配标签：${reasons.tags.join("、")}`));
  const counties = profile && profile.counties.length ? `服务：${profile.counties.join("、")}` : "服务地区不限";
  list.append(el("li", reasons.region.match ? `地区一致（${reasons.region.counties.join("、")}；${counties}）` : `地区不同或未知（${counties}）`));
  const c = reasons.components;
  list.append(el("li", `基础分：文本 ${c.text.toFixed(3)} ＋ 标签 ${c.tags.toFixed(3)} ＋ 地区 ${c.region.toFixed(3)}`, "muted"));
  if (reasons.rerank) {
    const moved = reasons.rerank.features.map((f) => `${f.label || FEATURE_NAMES[f.feature.split(":")[0]] || f.feature}${f.effect >= 0 ? "↑" : "↓"}`);
    const final = typeof score === "number" ? ` ${score.toFixed(3)}` : "";
    list.append(el("li", `学习排序（依据过往协调员决定）：基础分 ${reasons.rerank.base.toFixed(3)} → 最终得分${final}；主要因素：${moved.join("、") || "无"}`, "muted"));
  }
  return list;
}

function loadMeter(profile) {
  const box = el("div", undefined, "load");
  const full = profile.load >= profile.capacity;
  const meter = el("meter");
  meter.min = 0;
  meter.max = profile.capacity;
  meter.value = profile.load;
  meter.high = Math.max(profile.capacity - 0.5, 0);
  meter.setAttribute("aria-label", "负荷");
  box.append(el("span", `负荷 ${profile.load}/${profile.capacity}`, full ? "full" : ""), meter);
  if (full) box.append(el("span", "（已满）", "full"));
  if (!profile.available) box.append(el("span", "（暂不可用）", "full"));
  return box;
}

function card(type, match, rank, engaged) {
  const item = el("article", undefined, "match");
  item.dataset.id = match.id;
  const title = el("h4");
  title.append(el("span", `${rank}. `, "rank"), match.name, el("span", match.score.toFixed(3), "score"));
  item.append(title, el("small", match.id, "muted"));
  if (type === "expert" && match.profile && match.profile.capacity !== null) item.append(loadMeter(match.profile));
  item.append(reasonList(match.reasons, match.profile, match.score));
  if (match.profile) {
    const details = el("details");
    details.open = rank === 1;
    details.append(el("summary", "资料（匹配词已标出）"));
    const spans = match.reasons.terms.flatMap((t) => t.profile_spans || []);
    details.append(el("p", undefined, "profile"));
    details.lastChild.append(highlighted(match.profile.text, spans));
    item.append(details);
  }
  if (type === "expert" && CAN_CONTACT) {
    const contact = el("div", undefined, "contact");
    contact.append(button("联系方式", () => showContact(match.id, contact).catch(fail), "small secondary"));
    item.append(contact);
  }
  item.append(decisionBox(type, match, rank, engaged));
  return item;
}

async function showContact(expertId, box) {
  const expert = await api("GET", `/v1/experts/${encodeURIComponent(expertId)}`);
  box.replaceChildren(el("span", `电话：${expert.phone || "—"}　邮箱：${expert.email || "—"}　单位：${expert.affiliation || "—"}`));
}

function decisionBox(type, match, rank, engaged) {
  const box = el("div", undefined, "decision");
  if (engaged) {
    box.append(el("span", "已建立合作", "done"));
    return box;
  }
  if (!CAN_DECIDE) return box;
  if (!current.needId) {
    box.append(el("span", CAN_EDIT ? "自由填写的需求不能记录决定（请先保存为需求）" : "自由填写的需求不能记录决定", "muted"));
    return box;
  }
  const comment = el("input");
  comment.type = "text";
  comment.maxLength = 2000;
  comment.placeholder = "备注（可选）";
  comment.setAttribute("aria-label", `对 ${match.name} 的备注`);
  const accept = button("接受", () => decide(type, match, rank, "accepted", comment.value, box).catch(fail));
  const reject = button("不合适", () => decide(type, match, rank, "rejected", comment.value, box).catch(fail), "secondary");
  accept.setAttribute("aria-label", `接受 ${match.name}`);
  reject.setAttribute("aria-label", `${match.name} 不合适`);
  box.append(comment, accept, reject);
  return box;
}

async function decide(type, match, rank, decision, comment, box) {
  const payload = {
    need_id: current.needId, target_type: type, target_id: match.id, decision,
    model_version: current.body.model_version, rank, score: match.score,
  };
  if (comment.trim()) payload.comment = comment.trim();
  const result = await api("POST", "/v1/feedback", payload);
  if (result.engagement && type === "expert" && match.profile) {
    match.profile.load += 1;
  }
  box.replaceChildren(el("span", decision === "accepted" ? (result.engagement ? "已接受，已建立合作" : "已接受") : "已记录：不合适", "done"));
  say(`已记录决定：${DECISIONS[decision]} ${match.name}`);
  if (result.engagement) await renderMatch();
}

async function renderNeedEngagements() {
  const box = $("need-engagements");
  box.replaceChildren();
  if (!current.needId) {
    current.engagements = [];
    return;
  }
  const page = await api("GET", `/v1/engagements?${query({ need_id: current.needId, per_page: 100 })}`);
  current.engagements = page.items;
  if (!page.items.length) return;
  box.append(el("h4", "本需求的合作"));
  const list = el("ul", undefined, "engagements");
  for (const engagement of page.items) list.append(engagementItem(engagement, () => runMatch()));
  box.append(list);
}

function engagementItem(engagement, after) {
  const item = el("li");
  item.append(
    `${TYPE_NAMES[engagement.target_type]} ${engagement.target_name || engagement.target_id}（${engagement.target_id}）：`,
    el("span", ENGAGEMENT_STATUS[engagement.status], `state ${engagement.status}`),
    ` ${day(engagement.opened_at)}${engagement.closed_at ? " — " + day(engagement.closed_at) : ""} `,
  );
  if (engagement.outcome) item.append(el("span", outcomeText(engagement.outcome), "muted"));
  if (engagement.status === "open" && CAN_DECIDE) item.append(...closeButtons(engagement, after));
  else if (engagement.status === "completed" && !engagement.outcome && CAN_DECIDE) item.append(outcomeButton(engagement, after));
  return item;
}

// The follow-up (回访) of a completed engagement: goal met, rating, the expert's hours, what changed, a date.
// submit(outcome or null) is called with null for "complete now, follow up later" (when laterText is given).
function outcomeForm(name, submit, laterText) {
  const form = el("form", undefined, "outcome-form");
  form.setAttribute("aria-label", `与 ${name} 合作的回访`);
  const field = (text, control) => {
    const label = el("label", `${text} `);
    label.append(control);
    return label;
  };
  const goal = el("select");
  goal.name = "goal_met";
  goal.required = true;
  goal.append(new Option("请选择", ""), ...Object.entries(GOAL_MET).map(([value, text]) => new Option(text, value)));
  const rating = el("select");
  rating.name = "rating";
  rating.required = true;
  rating.append(new Option("请选择", ""), ...[5, 4, 3, 2, 1].map((n) => new Option(`${n} 分`, String(n))));
  const hours = el("input");
  Object.assign(hours, { type: "number", name: "hours", min: 0, max: 10000, step: 0.5 });
  const changed = el("input");
  Object.assign(changed, { type: "text", name: "changed", maxLength: 2000, placeholder: "如：建立了转介流程" });
  const followUp = el("input");
  Object.assign(followUp, { type: "date", name: "follow_up_on" });
  form.append(field("目标达成", goal), field("评分", rating), field("专家工时", hours), field("有什么变化", changed), field("回访日期", followUp));
  const save = el("button", laterText ? "保存回访并完成" : "保存回访");
  save.type = "submit";
  const row = el("div", undefined, "row");
  row.append(save);
  if (laterText) row.append(button(laterText, () => submit(null).catch(fail), "secondary small"));
  const cancel = button("取消", () => { form.remove(); }, "secondary small");
  row.append(cancel);
  form.append(row);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const outcome = { goal_met: goal.value, rating: Number(rating.value), changed: changed.value.trim() };
    if (hours.value !== "") outcome.hours = Number(hours.value);
    if (followUp.value) outcome.follow_up_on = followUp.value;
    submit(outcome).catch(fail);
  });
  form.addEventListener("keydown", (event) => { if (event.key === "Escape") form.remove(); });
  return form;
}

function outcomeText(outcome) {
  if (!outcome) return "";
  return `${GOAL_MET[outcome.goal_met]} · ${outcome.rating} 分${outcome.hours !== null ? ` · ${outcome.hours} 小时` : ""}`;
}

function showOutcomeForm(anchor, form) {
  const open = anchor.parentElement.querySelector(".outcome-form");
  if (open) open.remove();
  anchor.parentElement.append(form);
  form.querySelector("select").focus();
}

function closeButtons(engagement, after) {
  const name = engagement.target_name || engagement.target_id;
  const close = (decision, outcome) => async () => {
    const payload = {
      need_id: engagement.need_id, target_type: engagement.target_type, target_id: engagement.target_id, decision,
    };
    if (outcome) payload.outcome = outcome;
    await api("POST", "/v1/feedback", payload);
    await after();
    say(`已记录：${DECISIONS[decision]}合作 ${name}${outcome ? `（${outcomeText({ ...outcome, hours: outcome.hours ?? null })}）` : decision === "completed" ? "，待回访" : ""}`);
  };
  const done = button("完成", () => {
    showOutcomeForm(done, outcomeForm(name, (outcome) => close("completed", outcome)(), "先完成，稍后回访"));
  }, "small");
  const cancel = button("取消合作", () => close("cancelled")().catch(fail), "small secondary");
  done.setAttribute("aria-label", `完成与 ${engagement.target_name || engagement.target_id} 的合作`);
  cancel.setAttribute("aria-label", `取消与 ${engagement.target_name || engagement.target_id} 的合作`);
  return [done, cancel];
}

// A completed engagement without its follow-up: 补记回访 opens the form, saved with PUT …/outcome.
function outcomeButton(engagement, after) {
  const name = engagement.target_name || engagement.target_id;
  const later = button("补记回访", () => {
    showOutcomeForm(later, outcomeForm(name, async (outcome) => {
      await api("PUT", `/v1/engagements/${engagement.id}/outcome`, outcome);
      await after();
      say(`已记录回访：${name}（${outcomeText({ ...outcome, hours: outcome.hours ?? null })}）`);
    }));
  }, "small");
  later.setAttribute("aria-label", `补记与 ${name} 合作的回访`);
  return later;
}

async function exportXlsx() {
  const request = current && current.request ? current.request : matchRequest();
  let response;
  if (request.need_id && !request.text) {
    const params = query({ k: request.k, county: request.filters ? request.filters.county : "" });
    response = await api("GET", `/v1/needs/${encodeURIComponent(request.need_id)}/matches.xlsx?${params}`, undefined, { raw: true });
  } else {
    response = await api("POST", "/v1/match/export", request, { raw: true });
  }
  const blob = await response.blob();
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = request.need_id ? `matches-${request.need_id}.xlsx` : "matches.xlsx";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  say(`已导出 ${link.download}`);
}

// ---------------------------------------------------------------- a typed need's tags and saving it
// The chips are the tags the last match used (inferred from the text, or the ones sent); the
// coordinator removes (×) or adds (from the taxonomy) chips, then 重新匹配 sends exactly the chips.

function tagProbabilities() {
  const inferred = current.inferred && current.inferred.text === current.request.text ? current.inferred.tags : [];
  return new Map(inferred.map((t) => [t.tag, t.probability]));
}

function renderTags() {
  const editor = $("tag-editor");
  editor.hidden = Boolean(current.needId);
  if (editor.hidden) return;
  const probabilities = tagProbabilities();
  const chips = $("tag-chips");
  chips.replaceChildren(...current.tags.map((tag) => chip(tag, probabilities.get(tag))));
  const used = current.body.need.tags;
  let note;
  if (current.tags.join("\n") !== used.join("\n")) note = "标签已修改，按“重新匹配”使用下列标签。";
  else if (Array.isArray(current.request.tags)) note = "上次匹配使用了下列标签。";
  else if (current.inferred && used.length) note = "根据需求描述推断的标签（百分数为把握程度）。";
  else note = "没有从需求描述推断出标签。";
  if (!current.tags.length) note += "没有标签时只按文本匹配。";
  note += "可以移除（×）或从类别中添加标签，再按“重新匹配”；“匹配”按需求描述重新推断。";
  $("tags-note").textContent = note;
  for (const option of $("tag-add").options) {
    if (!option.value) continue;
    option.disabled = current.tags.includes(option.value);
    const p = probabilities.get(option.value);
    option.textContent = p === undefined || option.disabled ? option.value : `${option.value}（推断 ${percent(p)}）`;
  }
  if ($("tag-add").selectedOptions[0]?.disabled) $("tag-add").value = "";
  $("tag-add-button").disabled = current.tags.length >= MAX_TAGS;
}

function percent(probability) {
  return `${Math.round(100 * probability)}%`;
}

function chip(tag, probability) {
  const item = el("li", undefined, "chip");
  item.dataset.tag = tag;
  item.append(el("span", tag));
  if (probability !== undefined) item.append(el("small", percent(probability), "muted"));
  const remove = button("×", () => removeTag(tag), "chip-remove");
  remove.setAttribute("aria-label", `移除标签 ${tag}`);
  item.append(remove);
  return item;
}

function removeTag(tag) {
  const at = current.tags.indexOf(tag);
  if (at < 0) return;
  current.tags.splice(at, 1);
  renderTags();
  const left = $("tag-chips").querySelectorAll("button");
  (left[Math.min(at, left.length - 1)] || $("tag-add")).focus(); // the next chip, or the picker
  say(`已移除标签：${tag}。按“重新匹配”按新的标签匹配。`);
}

function addTag() {
  const tag = $("tag-add").value;
  if (!tag) throw new Error("请先在“添加标签”中选择一个类别");
  if (current.tags.length >= MAX_TAGS) throw new Error(`最多 ${MAX_TAGS} 个标签`);
  if (!current.tags.includes(tag)) current.tags.push(tag);
  renderTags();
  $("tag-add").value = "";
  $("tag-add").focus();
  say(`已添加标签：${tag}。按“重新匹配”按新的标签匹配。`);
}

async function rematch() {
  if (!$("need-text").value.trim()) throw new Error("请先填写需求描述");
  await runMatch(current.tags);
}

// Organisations named in the text: the name, the name without its county, and the short name (without
// the generic suffix; followed by 社工, 服务, 中心… so that 惠民政策 does not name 惠民社会工作服务中心).
const ORG_SUFFIXES = [
  "社会工作服务中心", "社会组织服务中心", "社会工作服务站", "社会工作事务所", "社工服务中心", "服务中心", "服务站", "事务所", "协会",
];
const SHORT_NAME_FOLLOWED_BY = ["社工", "社会", "服务", "中心", "站", "机构", "事务所", "协会"];

function orgNamedIn(texts, byId) {
  let best = null;
  const consider = (org, name, found) => {
    if (name.length >= 2 && found && (!best || name.length > best.name.length)) best = { org, name };
  };
  for (const org of byId.values()) {
    const local = org.county && org.name.startsWith(org.county) ? org.name.slice(org.county.length) : org.name;
    for (const name of new Set([org.name, local])) consider(org, name, texts.some((t) => t.includes(name)));
    const suffix = ORG_SUFFIXES.find((s) => local.endsWith(s) && local.length > s.length);
    if (!suffix) continue;
    const short = local.slice(0, -suffix.length);
    const named = (t) => SHORT_NAME_FOLLOWED_BY.some((after) => t.includes(short + after));
    consider(org, short, texts.some(named));
  }
  return best;
}

function firstClause(text) {
  const clause = text.split(/[。！？!?；;，,\n]/).map((part) => part.trim()).find(Boolean) || text.trim();
  return clause.slice(0, 60);
}

function unchangedText() {
  if ($("need-text").value.trim() !== current.request.text) {
    throw new Error("需求描述已修改：请先按“匹配”或“重新匹配”，再保存");
  }
}

async function openSave() {
  unchangedText();
  say("");
  const byId = await orgs();
  const select = $("save-org");
  if (select.options.length === 1) {
    for (const org of byId.values()) select.append(new Option(`${org.name}（${org.county || "—"}）`, org.id));
  }
  const text = current.request.text;
  const found = orgNamedIn([text, current.body.need.text], byId);
  select.value = found ? found.org.id : "";
  $("save-org-hint").textContent = found
    ? `需求描述提到“${found.name}”，已预选 ${found.org.name}；如不对请更改。`
    : "需求描述中没有找到机构名称，请选择提出需求的机构。";
  $("save-title").value = firstClause(text);
  $("save-need-form").hidden = false;
  $("save-need-button").setAttribute("aria-expanded", "true");
  (found ? $("save-title") : select).focus();
}

function closeSave() {
  const form = $("save-need-form");
  if (!form) return;
  form.hidden = true;
  $("save-need-button").setAttribute("aria-expanded", "false");
}

async function saveNeed() {
  unchangedText();
  const payload = {
    org_id: $("save-org").value, title: $("save-title").value.trim(), description: current.request.text,
    tags: [...current.tags], urgency: $("save-urgency").value,
  };
  const need = await api("POST", "/v1/needs", payload);
  closeSave();
  $("need-text").value = "";
  notice = `已保存为需求 ${need.id}，可以记录决定。`;
  location.hash = `#match/${encodeURIComponent(need.id)}`;
}

// ---------------------------------------------------------------- engagements view
const engState = { page: 1, perPage: 20 };
let experts = null;

async function showEngagements() {
  const byId = await orgs();
  const select = $("e-org");
  if (select.options.length === 1) {
    for (const org of byId.values()) select.append(new Option(`${org.name}（${org.county || "—"}）`, org.id));
  }
  if (!experts) {
    experts = await everything("/v1/experts");
    $("expert-list").replaceChildren(...experts.map((e) => new Option(`${e.name} ${e.affiliation || ""}`.trim(), e.id)));
  }
  await loadEngagements();
}

function expertChosen() {
  const typed = $("e-expert").value.trim();
  if (!typed) return null;
  return experts.find((e) => e.id === typed) || experts.find((e) => e.name === typed) || { id: typed };
}

async function loadEngagements() {
  const expert = expertChosen();
  const awaiting = $("e-status").value === "awaiting";
  const params = {
    org_id: $("e-org").value, expert_id: expert ? expert.id : "", status: awaiting ? "" : $("e-status").value,
    awaiting_outcome: awaiting ? "true" : "", page: engState.page, per_page: engState.perPage,
  };
  const page = await api("GET", `/v1/engagements?${query(params)}`);
  const rows = $("eng-table").tBodies[0];
  rows.replaceChildren();
  for (const engagement of page.items) {
    const row = el("tr");
    const need = el("a", `${engagement.need_id} ${engagement.need_title || ""}`);
    need.href = `#match/${encodeURIComponent(engagement.need_id)}`;
    const action = el("td");
    if (engagement.status === "open" && CAN_DECIDE) action.append(...closeButtons(engagement, loadEngagements));
    else if (engagement.status === "completed" && !engagement.outcome && CAN_DECIDE) {
      action.append(outcomeButton(engagement, loadEngagements));
    }
    const state = el("td", ENGAGEMENT_STATUS[engagement.status], `state ${engagement.status}`);
    if (engagement.status === "completed") {
      state.append(el("br"), el("small", engagement.outcome ? outcomeText(engagement.outcome) : "待回访", "muted"));
    }
    row.append(
      el("td"), el("td", `${TYPE_NAMES[engagement.target_type]} ${engagement.target_name || engagement.target_id}`),
      state,
      el("td", day(engagement.opened_at)), el("td", day(engagement.closed_at) || "—"), action,
    );
    row.firstChild.append(need);
    rows.append(row);
  }
  if (!page.total) rows.append(emptyRow(6, "没有符合条件的合作。"));
  labelCells($("eng-table"));
  const pages = Math.max(1, Math.ceil(page.total / engState.perPage));
  $("eng-page").textContent = `第 ${engState.page} / ${pages} 页`;
  $("eng-prev").disabled = engState.page <= 1;
  $("eng-next").disabled = engState.page >= pages;
  let summary = awaiting ? `共 ${page.total} 项已完成的合作待回访` : `共 ${page.total} 项合作`;
  if (expert && expert.id) {
    const fresh = await api("GET", `/v1/experts/${encodeURIComponent(expert.id)}`);
    summary = `${fresh.name}（${fresh.id}）：负荷 ${fresh.open_engagements}/${fresh.capacity}，${summary}`;
  }
  $("eng-summary").textContent = summary;
  say("");
}

// ---------------------------------------------------------------- overview view
async function showOverview() {
  const overview = await api("GET", "/v1/overview?weakest=15");
  const chart = $("supply-chart");
  chart.replaceChildren();
  const rows = overview.categories.filter((c) => c.open_needs || c.free_places);
  const top = Math.max(1, ...rows.map((c) => Math.max(c.open_needs, c.free_places)));
  for (const c of rows) {
    const row = el("div", undefined, "bar-row");
    const short = c.free_places < c.open_needs;
    row.append(el("span", c.category, short ? "bar-label short" : "bar-label"));
    const bars = el("div", undefined, "bars");
    for (const [value, kind] of [[c.open_needs, "needs"], [c.free_places, "places"]]) {
      const bar = el("span", String(value), `bar ${kind}`);
      bar.style.width = `${Math.max(2, (100 * value) / top)}%`;
      bars.append(bar);
    }
    row.title = `${c.category}：待匹配需求 ${c.open_needs}，空余名额 ${c.free_places}，可用专家 ${c.experts}`;
    row.append(bars);
    chart.append(row);
  }
  const short = rows.filter((c) => c.free_places < c.open_needs).map((c) => c.category);
  $("supply-caption").textContent = short.length
    ? `空余名额少于需求的类别：${short.join("、")}。`
    : "每个类别的空余名额都不少于待匹配需求。";
  chart.setAttribute("aria-label", rows.map((c) => `${c.category} 需求 ${c.open_needs} 名额 ${c.free_places}`).join("；"));
  $("weak-summary").textContent = `${overview.weak_needs} 条待匹配需求的最佳专家得分低于 ${overview.threshold}（模型版本 ${overview.model_version}）。`;
  const table = $("weak-table").tBodies[0];
  table.replaceChildren();
  for (const need of overview.weakest) {
    const row = el("tr");
    const open = el("a", "匹配");
    open.href = `#match/${encodeURIComponent(need.need_id)}`;
    open.className = "action";
    open.setAttribute("aria-label", `为需求 ${need.need_id} 匹配`);
    row.append(
      el("td", `${need.need_id} ${need.title}`), el("td", need.org_name || "—"), el("td", need.county || "—"),
      el("td", need.tags.join("、")), el("td", need.best_name ? `${need.best_name}（${need.best_id}）` : "—"),
      el("td", need.best_score.toFixed(3), need.best_score < overview.threshold ? "weak" : ""), el("td"),
    );
    row.lastChild.append(open);
    table.append(row);
  }
  if (!overview.weakest.length) table.append(emptyRow(7, "没有待匹配的需求。"));
  labelCells($("weak-table"));
  say("");
}

// ---------------------------------------------------------------- wiring
async function showModelVersion() {
  try {
    const health = await fetch("/health").then((r) => r.json());
    $("model-version").textContent = health.model_version || "（没有可用的模型）";
  } catch {
    $("model-version").textContent = "（无法读取）";
  }
}

function wire() {
  const signIn = $("sign-in-form");
  if (signIn) {
    signIn.addEventListener("submit", async (event) => {
      event.preventDefault();
      say("正在登录…");
      try {
        await api("POST", "/session", { key: $("api-key").value.trim() });
        window.location.reload();
      } catch (error) {
        fail(new Error(`登录失败：${error.message}`));
      }
    });
  }
  const signOut = $("sign-out");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      await api("DELETE", "/session").catch(() => null);
      window.location.reload();
    });
  }
  if (!$("view-needs")) return;
  $("needs-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    needsState.page = 1;
    showNeeds().catch(fail);
  });
  $("needs-prev").addEventListener("click", () => { needsState.page -= 1; showNeeds().catch(fail); });
  $("needs-next").addEventListener("click", () => { needsState.page += 1; showNeeds().catch(fail); });
  $("match-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runMatch().catch((error) => { $("results").replaceChildren(); fail(error); });
  });
  $("export-button").addEventListener("click", () => exportXlsx().catch(fail));
  $("tag-add-button").addEventListener("click", () => {
    try {
      addTag();
    } catch (error) {
      fail(error);
    }
  });
  $("rematch-button").addEventListener("click", () => rematch().catch(fail));
  if ($("save-need-form")) {
    $("save-need-button").addEventListener("click", () => {
      if ($("save-need-form").hidden) openSave().catch(fail);
      else closeSave();
    });
    $("save-need-form").addEventListener("submit", (event) => {
      event.preventDefault();
      saveNeed().catch(fail);
    });
    $("save-need-cancel").addEventListener("click", () => { closeSave(); $("save-need-button").focus(); });
    $("save-need-form").addEventListener("keydown", (event) => {
      if (event.key === "Escape") { closeSave(); $("save-need-button").focus(); }
    });
  }
  $("eng-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    engState.page = 1;
    loadEngagements().catch(fail);
  });
  $("eng-prev").addEventListener("click", () => { engState.page -= 1; loadEngagements().catch(fail); });
  $("eng-next").addEventListener("click", () => { engState.page += 1; loadEngagements().catch(fail); });
  window.addEventListener("hashchange", route);
  route();
}

showModelVersion();
wire();
