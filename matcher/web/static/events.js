"use strict";
// The 培训与工作坊 view (#events): plan events for a period, edit and confirm the proposals, list the
// events by date with their attendees, mark them held, record attendance and ratings, download the
// sign-in sheet. Loaded before match.js, which routes to it; it uses match.js's helpers ($, el,
// button, api, say, fail, everything, orgs, CAN_DECIDE) when the view is shown.

(function () {
  const KINDS = { training: "主题培训", workshop: "实务工作坊", supervision: "督导巡回" };
  const EVENT_STATUS = { planned: "计划中", confirmed: "已确认", held: "已举办", cancelled: "已取消" };
  const ATTENDANCE = { invited: "已邀请", confirmed: "已确认", attended: "出席", absent: "缺席" };
  let experts = null;

  async function expertNames() {
    if (!experts) experts = new Map((await everything("/v1/experts")).map((e) => [e.id, e.name]));
    return experts;
  }

  function when(iso) {
    return iso ? iso.slice(0, 16).replace("T", " ") : "";
  }

  function local(iso) {
    return iso ? iso.slice(0, 16) : ""; // datetime-local value; the server reads it as Beijing time
  }

  function field(labelText, input) {
    const label = el("label", `${labelText} `);
    label.append(input);
    return label;
  }

  function input(type, value, attributes = {}) {
    const node = el("input");
    node.type = type;
    if (value !== undefined && value !== null) node.value = value;
    for (const [key, val] of Object.entries(attributes)) node.setAttribute(key, val);
    return node;
  }

  function select(options, value) {
    const node = el("select");
    for (const [key, text] of Object.entries(options)) {
      const option = el("option", text);
      option.value = key;
      option.selected = key === value;
      node.append(option);
    }
    return node;
  }

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  // ---------------------------------------------------------------- the skeleton, built once
  function build(root) {
    root.replaceChildren();
    if (CAN_DECIDE) {
      const form = el("form", null, "panel filters");
      form.id = "plan-form";
      const start = new Date(Date.now() + 86400000);
      const from = input("date", isoDay(start), { id: "plan-from", required: "" });
      const to = input("date", isoDay(new Date(start.getTime() + 27 * 86400000)), { id: "plan-to", required: "" });
      form.append(field("开始日期", from), field("结束日期", to));
      for (const [kind, text] of Object.entries(KINDS)) {
        const box = input("checkbox", kind, { name: "kind", id: `plan-kind-${kind}` });
        box.checked = true;
        form.append(field(text, box));
      }
      form.append(
        field("每场至少", input("number", 3, { id: "plan-min", min: 2, max: 200 })),
        field("每场至多", input("number", 12, { id: "plan-max", min: 2, max: 200 })),
      );
      const submit = el("button", "生成方案");
      submit.type = "submit";
      form.append(submit);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        plan().catch(fail);
      });
      root.append(form, el("p", null, "muted"), el("div", null, "proposals"));
      root.querySelector("p.muted").id = "plan-summary";
      root.querySelector("div.proposals").id = "proposals";
      const unserved = el("details");
      unserved.id = "plan-unserved";
      unserved.hidden = true;
      root.append(unserved);
    }
    root.append(el("h3", "活动安排（按日期）"));
    const list = el("div");
    list.id = "events-list";
    root.append(list);
  }

  // ---------------------------------------------------------------- planning
  async function plan() {
    const kinds = [...document.querySelectorAll("#plan-form input[name=kind]:checked")].map((b) => b.value);
    say("正在生成方案…");
    const result = await api("POST", "/v1/events/plan", {
      starts: $("plan-from").value,
      ends: $("plan-to").value,
      kinds,
      min_size: Number($("plan-min").value),
      max_size: Number($("plan-max").value),
    });
    say(result.stopped_at_limit ? "方案已生成（优化到达时间上限，为找到的最好方案）" : "方案已生成");
    $("plan-summary").textContent =
      `建议 ${result.events.length} 场活动，服务 ${result.events.reduce((n, e) => n + e.needs.length, 0)} 条需求；` +
      `${result.unserved.length} 条需求未能成组（留给一对一匹配）。`;
    const box = $("proposals");
    box.replaceChildren(...result.events.map((event, index) => proposal(event, index)));
    const unserved = $("plan-unserved");
    unserved.replaceChildren(el("summary", `未能成组的需求（${result.unserved.length}）及原因`));
    const items = el("ul");
    for (const item of result.unserved) items.append(el("li", `${item.need_id}：${item.reason}`));
    unserved.append(items);
    unserved.hidden = result.unserved.length === 0;
  }

  function proposal(event, index) {
    const card = el("article", null, "panel proposal");
    card.setAttribute("aria-label", `方案 ${index + 1}`);
    const title = input("text", event.title, { maxlength: 200, "aria-label": "活动标题" });
    card.append(el("h4", `方案 ${index + 1} · ${KINDS[event.kind]} · ${event.county}`), field("标题", title));
    const starts = input("datetime-local", local(event.starts_at));
    const ends = input("datetime-local", local(event.ends_at));
    const expert = input("text", event.expert_ids.join(";"), { "aria-label": "专家编号" });
    const venue = input("text", event.venue_id || "", { "aria-label": "场地编号" });
    const seats = input("number", event.seats, { min: 1 });
    const row = el("div", null, "row");
    row.append(field("开始", starts), field("结束", ends), field("专家", expert), field("场地", venue), field("座位", seats));
    card.append(row);
    const why = el("p", `共同关注：${event.reasons.terms.join("、") || "—"}；${event.reasons.expert}；${event.reasons.venue}`, "muted");
    card.append(why);
    const needs = el("ul", null, "proposal-needs");
    const addNeed = (need) => {
      const item = el("li", `${need.need_id}（${need.org_id}）${need.score !== undefined ? ` 得分 ${need.score.toFixed(3)}` : ""} `);
      item.dataset.needId = need.need_id;
      item.dataset.orgId = need.org_id;
      item.append(button("移除", () => item.remove(), "small secondary"));
      needs.append(item);
    };
    event.needs.forEach(addNeed);
    card.append(needs);
    const extra = input("text", "", { placeholder: "需求编号，如 N0001", "aria-label": "添加需求编号" });
    const add = button("添加需求", async () => {
      try {
        const need = await api("GET", `/v1/needs/${encodeURIComponent(extra.value.trim())}`);
        addNeed({ need_id: need.id, org_id: need.org_id });
        extra.value = "";
      } catch (error) {
        fail(error);
      }
    }, "small");
    const addRow = el("div", null, "row");
    addRow.append(extra, add);
    card.append(addRow);
    const actions = el("div", null, "row");
    actions.append(
      button("确认为活动", () => confirm().catch(fail)),
      button("放弃", () => card.remove(), "secondary"),
    );
    card.append(actions);

    async function confirm() {
      const id = `V${Date.now().toString(36).toUpperCase()}${index}`;
      const record = {
        id, kind: event.kind, title: title.value, tags: event.tags,
        expert_ids: expert.value.split(/[;；,，]/).map((s) => s.trim()).filter(Boolean),
        venue_id: venue.value.trim() || null, resource_ids: event.resource_ids, county: event.county,
        starts_at: starts.value, ends_at: ends.value, seats: Number(seats.value), status: "confirmed",
      };
      await api("POST", "/v1/events", record);
      let n = 0;
      for (const item of needs.querySelectorAll("li")) {
        n += 1;
        await api("POST", "/v1/attendees", {
          id: `${id}-${String(n).padStart(2, "0")}`, event_id: id, org_id: item.dataset.orgId, need_id: item.dataset.needId,
        });
      }
      card.remove();
      say(`已确认活动 ${id}（${n} 家机构）`);
      await listEvents();
    }
    return card;
  }

  // ---------------------------------------------------------------- events and attendees
  async function listEvents() {
    const [events, names, byOrg] = await Promise.all([everything("/v1/events"), expertNames(), orgs()]);
    events.sort((a, b) => (a.starts_at < b.starts_at ? 1 : a.starts_at > b.starts_at ? -1 : a.id < b.id ? -1 : 1));
    const list = $("events-list");
    if (!events.length) {
      list.replaceChildren(el("p", "还没有活动。", "muted"));
      return;
    }
    list.replaceChildren(...events.slice(0, 30).map((event) => eventCard(event, names, byOrg)));
    if (events.length > 30) list.append(el("p", `另有 ${events.length - 30} 场较早的活动未显示。`, "muted"));
  }

  function eventCard(event, names, byOrg) {
    const card = el("article", null, "panel event");
    card.dataset.eventId = event.id;
    card.append(el("h4", `${when(event.starts_at)} · ${event.title}`));
    const people = event.expert_ids.map((id) => names.get(id) || id).join("、");
    card.append(el("p", `${KINDS[event.kind]} · ${EVENT_STATUS[event.status]} · 专家：${people} · 场地：${event.venue_id || "未定"} · 座位 ${event.seats}`, "muted"));
    const actions = el("div", null, "row");
    const put = async (status) => {
      await api("PUT", `/v1/events/${encodeURIComponent(event.id)}`, { ...event, status });
      say(`活动 ${event.id}：${EVENT_STATUS[status]}`);
      await listEvents();
    };
    if (CAN_DECIDE && event.status === "planned") actions.append(button("确认", () => put("confirmed").catch(fail), "small"));
    if (CAN_DECIDE && ["planned", "confirmed"].includes(event.status)) {
      actions.append(button("标记已举办", () => put("held").catch(fail), "small"));
      actions.append(button("取消活动", () => put("cancelled").catch(fail), "small secondary"));
    }
    const sheet = el("a", "下载签到表");
    sheet.href = `/v1/events/${encodeURIComponent(event.id)}/signin.xlsx`;
    sheet.setAttribute("download", "");
    actions.append(sheet);
    card.append(actions);
    const attendees = el("div", "…");
    card.append(attendees);
    loadAttendees(event, attendees, byOrg).catch(fail);
    return card;
  }

  async function loadAttendees(event, box, byOrg) {
    const items = await everything(`/v1/attendees?event_id=${encodeURIComponent(event.id)}`);
    const table = el("table", null, "attendees");
    const head = el("tr");
    for (const text of ["机构", "需求", "出席", "评分", "评语", ""]) head.append(el("th", text));
    table.append(el("thead"));
    table.tHead.append(head);
    const rows = el("tbody");
    for (const attendee of items) {
      const row = el("tr");
      const org = byOrg.get(attendee.org_id);
      const orgCell = el("td", org ? org.name : attendee.org_id);
      orgCell.dataset.label = "机构";
      const needCell = el("td", attendee.need_id || "—");
      needCell.dataset.label = "需求";
      row.append(orgCell, needCell);
      const held = event.status === "held";
      const status = select(held ? ATTENDANCE : { invited: ATTENDANCE.invited, confirmed: ATTENDANCE.confirmed }, attendee.status);
      status.setAttribute("aria-label", "出席情况");
      const rating = select({ "": "—", 1: "1", 2: "2", 3: "3", 4: "4", 5: "5" }, attendee.rating ? String(attendee.rating) : "");
      rating.setAttribute("aria-label", "评分");
      rating.disabled = !held;
      const comment = input("text", attendee.comment, { maxlength: 2000, "aria-label": "评语" });
      const cells = [status, rating, comment].map((node, i) => {
        const cell = el("td");
        cell.dataset.label = ["出席", "评分", "评语"][i];
        cell.append(node);
        return cell;
      });
      row.append(...cells);
      const save = el("td");
      save.dataset.label = "操作";
      if (CAN_DECIDE && event.status !== "cancelled") {
        save.append(button("保存", async () => {
          try {
            await api("PUT", `/v1/attendees/${encodeURIComponent(attendee.id)}`, {
              ...attendee, status: status.value, rating: rating.value ? Number(rating.value) : null, comment: comment.value,
            });
            say(`已保存 ${attendee.id}`);
          } catch (error) {
            fail(error);
          }
        }, "small"));
      }
      row.append(save);
      rows.append(row);
    }
    table.append(rows);
    const wrap = el("div", null, "table-wrap");
    wrap.append(table);
    box.replaceChildren(items.length ? wrap : el("p", "尚无参加机构。", "muted"));
  }

  async function showEvents() {
    const root = $("events-root");
    if (!root.dataset.built) {
      build(root);
      root.dataset.built = "1";
    }
    await listEvents();
  }

  window.matcherViews = { ...(window.matcherViews || {}), events: showEvents };
})();
