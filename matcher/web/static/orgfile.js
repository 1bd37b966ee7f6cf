"use strict";
// Two views (loaded before match.js, which routes to them and lends its helpers: $, el, button, api, say,
// fail, orgs, labelCells, emptyRow, outcomeButton, outcomeText, CAN_DECIDE, CAN_EDIT):
//   #orgfile[/ORG_ID]  机构档案: an organisation's status, stages, plan, staff and everything it received;
//   #report            工作报表: the bureau report of a period with bar charts (本期 against 上期), and its XLSX.

(function () {
  const STATUS = { applicant: "申请中", resident: "在孵", graduated: "已出壳", left: "已离开" };
  const KIND = { agency: "社工机构", station: "乡镇社工站", centre: "县级指导中心" };
  const MILESTONE = { planned: "计划中", done: "已完成", missed: "未按期完成" };
  const EVENT_KIND = { training: "主题培训", workshop: "实务工作坊", supervision: "督导巡回" };
  const ATTENDANCE = { invited: "已邀请", confirmed: "已确认", attended: "出席", absent: "缺席" };
  const ENGAGEMENT = { open: "进行中", completed: "已完成", cancelled: "已取消" };
  const TARGET = { expert: "专家", resource: "资源", project: "示范项目" };
  const STAGES = ["初创期", "成长期", "成熟期"];
  const day = (iso) => (iso ? iso.slice(0, 10) : "—");

  function field(text, control) {
    const label = el("label", `${text} `);
    label.append(control);
    return label;
  }

  function table(id, headers, rows, emptyText) {
    const wrap = el("div", null, "table-wrap");
    const node = el("table");
    node.id = id;
    const head = el("thead");
    const tr = el("tr");
    for (const h of headers) {
      const th = el("th", h);
      th.scope = "col";
      tr.append(th);
    }
    head.append(tr);
    const body = el("tbody");
    for (const cells of rows) {
      const row = el("tr");
      for (const cell of cells) row.append(cell instanceof Node ? cell : el("td", cell === null || cell === undefined ? "—" : String(cell)));
      body.append(row);
    }
    if (!rows.length) body.append(emptyRow(headers.length, emptyText));
    node.append(head, body);
    wrap.append(node);
    labelCells(node);
    return wrap;
  }

  // ---------------------------------------------------------------- 机构档案
  function buildFile(root) {
    const form = el("form", null, "panel filters");
    form.id = "file-form";
    const select = el("select");
    select.id = "file-org";
    select.required = true;
    select.append(new Option("请选择机构", ""));
    const open = el("button", "查看档案");
    open.type = "submit";
    form.append(field("机构", select), open);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (select.value) location.hash = `#orgfile/${encodeURIComponent(select.value)}`;
    });
    const box = el("div");
    box.id = "file";
    root.append(form, box);
  }

  async function showFile(orgId) {
    const root = $("orgfile-root");
    if (!root.dataset.built) {
      buildFile(root);
      root.dataset.built = "1";
    }
    const select = $("file-org");
    if (select.options.length === 1) {
      for (const org of (await orgs()).values()) select.append(new Option(`${org.name}（${org.county || "—"}）`, org.id));
    }
    if (!orgId) {
      $("file").replaceChildren(el("p", "选择一个机构查看它的孵化档案：入驻与阶段、孵化计划、人员，以及接受过的合作、活动和资源。", "muted"));
      say("");
      return;
    }
    select.value = orgId;
    await renderFile(orgId);
  }

  async function renderFile(orgId) {
    const file = await api("GET", `/v1/organisations/${encodeURIComponent(orgId)}/file`);
    const org = file.organisation;
    const box = $("file");
    const head = el("article", null, "panel");
    head.setAttribute("aria-labelledby", "file-name");
    const name = el("h3", org.name);
    name.id = "file-name";
    const facts = el("dl", null, "file-facts");
    for (const [label, value] of [
      ["状态", STATUS[org.status] || org.status], ["类型", KIND[org.kind] || org.kind], ["入驻日期", org.admitted_on || "—"],
      ["出壳/离开日期", org.left_on || "—"], ["当前阶段", org.stage], ["县区", `${org.county} ${org.township || ""}`],
      ["成立年份", org.founded_year || "—"], ["工作人员", org.staff_count ?? "—"], ["持证社工", org.licensed_social_workers ?? "—"],
    ]) facts.append(el("dt", label), el("dd", String(value)));
    const s = file.summary;
    const summary = el("p", `需求 ${s.needs} 条；合作 ${s.engagements} 项，已完成 ${s.completed} 项（目标达成 ${s.goal_met} 项，待回访 ${s.awaiting_outcome} 项）；专家工时 ${s.expert_hours} 小时；出席活动 ${s.events_attended} 次；使用资源 ${s.resources} 次。`, "muted");
    summary.id = "file-summary";
    const download = el("a", "下载档案 Excel", "action");
    download.href = `/v1/organisations/${encodeURIComponent(org.id)}/file.xlsx`;
    download.download = `file-${org.id}.xlsx`;
    download.id = "file-download";
    head.append(name, facts, summary, download);
    if (CAN_EDIT) head.append(statusForm(org));

    const stages = el("section", null, "panel");
    stages.append(el("h3", "阶段历史"));
    const steps = el("ol");
    for (const step of file.stages) steps.append(el("li", `${step.since} 起：${step.stage}`));
    stages.append(file.stages.length ? steps : el("p", `没有阶段记录；当前为${org.stage}。`, "muted"));

    const plan = el("section", null, "panel");
    plan.append(el("h3", "孵化计划（各阶段目标与里程碑）"));
    plan.append(table("file-plan", ["阶段", "目标", "里程碑", "截止日期", "状态", "操作"], file.milestones.map((m) => {
      const action = el("td");
      if (CAN_EDIT) {
        const status = el("select");
        status.setAttribute("aria-label", `里程碑 ${m.milestone} 的状态`);
        for (const [value, text] of Object.entries(MILESTONE)) status.append(new Option(text, value, false, value === m.status));
        status.addEventListener("change", async () => {
          try {
            await api("PUT", `/v1/milestones/${encodeURIComponent(m.id)}`, { ...m, status: status.value });
            say(`已更新里程碑：${m.milestone}（${MILESTONE[status.value]}）`);
          } catch (error) {
            fail(error);
          }
        });
        action.append(status);
      }
      return [m.stage, m.goal, m.milestone, m.due_on, MILESTONE[m.status] || m.status, action];
    }), "还没有孵化计划。"));
    if (CAN_EDIT) plan.append(milestoneForm(org));

    const work = el("section", null, "panel");
    work.append(el("h3", "合作与成效"));
    work.append(table("file-engagements", ["需求", "对象", "状态", "开始", "结束", "回访", "操作"], file.engagements.map((e) => {
      const action = el("td");
      if (e.status === "completed" && !e.outcome && CAN_DECIDE) action.append(outcomeButton(e, () => renderFile(orgId)));
      const outcome = e.outcome ? `${outcomeText(e.outcome)}${e.outcome.changed ? `；${e.outcome.changed}` : ""}` : e.status === "completed" ? "待回访" : "—";
      return [`${e.need_id} ${e.need_title || ""}`, `${TARGET[e.target_type]} ${e.target_name || e.target_id}`,
        ENGAGEMENT[e.status], day(e.opened_at), day(e.closed_at), outcome, action];
    }), "还没有合作。"));

    const events = el("section", null, "panel");
    events.append(el("h3", "参加的培训、工作坊和督导"));
    events.append(table("file-events", ["日期", "活动", "类型", "出席", "评分"], file.events.map((v) => [
      day(v.starts_at), v.title, EVENT_KIND[v.kind] || v.kind, ATTENDANCE[v.attendance] || v.attendance, v.rating,
    ]), "还没有参加活动。"));

    const resources = el("section", null, "panel");
    resources.append(el("h3", "使用的资源"));
    resources.append(table("file-resources", ["日期", "资源", "提供方", "金额（元）", "途径"], file.resources.map((r) => [
      day(r.at), r.name, r.provider || "—", r.amount_yuan, r.via === "合作" ? `合作（需求 ${r.reference}）` : `活动 ${r.reference}`,
    ]), "还没有使用资源。"));
    box.replaceChildren(head, stages, plan, work, events, resources);
    say(`已打开 ${org.name} 的档案`);
  }

  // Admission, graduation (出壳) or leaving, and the staff figures: a PUT of the organisation as a whole.
  function statusForm(org) {
    const form = el("form", null, "filters");
    form.id = "file-status-form";
    form.setAttribute("aria-label", "修改入驻状态和人员");
    const status = el("select");
    status.name = "status";
    for (const [value, text] of Object.entries(STATUS)) status.append(new Option(text, value, false, value === org.status));
    const dateInput = (name, value) => {
      const node = el("input");
      Object.assign(node, { type: "date", name, value: value || "" });
      return node;
    };
    const number = (name, value) => {
      const node = el("input");
      Object.assign(node, { type: "number", name, min: 0, value: value ?? "" });
      return node;
    };
    const admitted = dateInput("admitted_on", org.admitted_on);
    const left = dateInput("left_on", org.left_on);
    const staff = number("staff_count", org.staff_count);
    const licensed = number("licensed_social_workers", org.licensed_social_workers);
    const save = el("button", "保存", "small");
    save.type = "submit";
    form.append(field("状态", status), field("入驻日期", admitted), field("出壳/离开日期", left), field("工作人员", staff),
      field("持证社工", licensed), save);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { updated_at: _, ...record } = org;
      const value = (input) => (input.value === "" ? null : input.value);
      try {
        await api("PUT", `/v1/organisations/${encodeURIComponent(org.id)}`, {
          ...record, status: status.value, admitted_on: value(admitted), left_on: value(left),
          staff_count: value(staff) === null ? null : Number(staff.value),
          licensed_social_workers: value(licensed) === null ? null : Number(licensed.value),
        });
        await renderFile(org.id);
        say(`已保存 ${org.name}：${STATUS[status.value]}`);
      } catch (error) {
        fail(error);
      }
    });
    return form;
  }

  function milestoneForm(org) {
    const form = el("form", null, "filters");
    form.setAttribute("aria-label", "添加里程碑");
    const stage = el("select");
    for (const s of STAGES) stage.append(new Option(s, s, false, s === org.stage));
    const goal = el("input");
    Object.assign(goal, { type: "text", maxLength: 200, required: true });
    const milestone = el("input");
    Object.assign(milestone, { type: "text", maxLength: 200, required: true });
    const due = el("input");
    Object.assign(due, { type: "date", required: true });
    const add = el("button", "添加里程碑", "small");
    add.type = "submit";
    form.append(field("阶段", stage), field("目标", goal), field("里程碑", milestone), field("截止日期", due), add);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const id = `${org.id}-M${Date.now().toString(36)}`;
        await api("POST", "/v1/milestones", { id, org_id: org.id, stage: stage.value, goal: goal.value, milestone: milestone.value, due_on: due.value });
        await renderFile(org.id);
        say(`已添加里程碑：${milestone.value}`);
      } catch (error) {
        fail(error);
      }
    });
    return form;
  }

  // ---------------------------------------------------------------- 工作报表
  function currentQuarter() {
    const now = new Date();
    return `${now.getFullYear()}Q${Math.floor(now.getMonth() / 3) + 1}`;
  }

  async function buildReport(root) {
    const form = el("form", null, "panel filters");
    form.id = "report-form";
    const period = el("input");
    Object.assign(period, { type: "text", id: "report-period", value: currentQuarter(), required: true, maxLength: 16 });
    period.setAttribute("aria-describedby", "report-hint");
    const county = el("select");
    county.id = "report-county";
    county.append(new Option("全部县区", ""));
    for (const c of [...new Set([...(await orgs()).values()].map((o) => o.county).filter(Boolean))].sort()) county.append(new Option(c, c));
    const make = el("button", "生成报表");
    make.type = "submit";
    const hint = el("p", "报告期可以是季度（2026Q3）、月份（2026-07）或年份（2026）；上期为紧挨着的同长度期间。", "muted");
    hint.id = "report-hint";
    form.append(field("报告期", period), field("县区", county), make, hint);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      renderReport().catch(fail);
    });
    const box = el("div");
    box.id = "report";
    root.append(form, box);
  }

  function chart(rows, label) {
    const node = el("div", null, "chart");
    node.setAttribute("role", "img");
    const top = Math.max(1, ...rows.map((r) => Math.max(r.current || 0, r.previous || 0)));
    for (const r of rows) {
      const row = el("div", null, "bar-row");
      const name = r.group === "全部" ? r.item : `${r.group}·${r.item}`;
      row.append(el("span", name, "bar-label"));
      const bars = el("div", null, "bars");
      for (const [value, kind] of [[r.current, "current"], [r.previous, "previous"]]) {
        const bar = el("span", value === null ? "—" : String(value), `bar ${kind}`);
        bar.style.width = `${Math.max(2, (100 * (value || 0)) / top)}%`;
        bars.append(bar);
      }
      row.append(bars);
      node.append(row);
    }
    node.setAttribute("aria-label", `${label}：` + rows.map((r) => `${r.group === "全部" ? "" : r.group}${r.item} 本期 ${r.current ?? "—"} 上期 ${r.previous ?? "—"}`).join("；"));
    return node;
  }

  async function renderReport() {
    const period = $("report-period").value.trim();
    const county = $("report-county").value;
    const params = query({ period, county });
    const report = await api("GET", `/v1/report?${params}`);
    const box = $("report");
    const cover = el("article", null, "panel");
    cover.append(
      el("h3", `${report.period.label}（${report.period.start} 至 ${report.period.end}）${report.county ? ` · ${report.county}` : " · 全部县区"}`),
      el("p", `对比上期 ${report.previous.label}（${report.previous.start} 至 ${report.previous.end}）；生成时间 ${report.produced_at.replace("T", " ").slice(0, 19)}`, "muted"),
    );
    const legend = el("p", null, "legend");
    legend.append(el("span", null, "key current"), "本期 ", el("span", null, "key previous"), "上期");
    const download = el("a", "下载 Excel", "action");
    download.id = "report-download";
    download.href = `/v1/report.xlsx?${params}`;
    download.download = `report-${report.period.label}.xlsx`;
    const notes = el("details");
    notes.append(el("summary", "统计口径"));
    const list = el("ul");
    for (const d of report.definitions) list.append(el("li", d));
    notes.append(list);
    cover.append(legend, download, notes);
    const parts = [cover];
    for (const t of report.tables) {
      const section = el("section", null, "panel report-table");
      section.dataset.table = t.name;
      section.append(el("h3", t.title));
      const totals = t.rows.filter((r) => r.county === "合计" && (["needs", "engagements"].includes(t.name) ? r.group === "全部" : true));
      if (totals.length) section.append(chart(totals, t.title));
      const details = el("details");
      details.append(el("summary", `明细：按县区和类别（${t.rows.length} 行）`));
      details.append(table(`report-${t.name}`, report.headers, t.rows.map((r) => [r.county, r.group, r.item, r.current, r.previous, r.change]), "本期和上期都没有记录。"));
      details.open = t.rows.length <= 12;
      section.append(details);
      parts.push(section);
    }
    box.replaceChildren(...parts);
    say(`已生成 ${report.period.label} 工作报表`);
  }

  async function showReport() {
    const root = $("report-root");
    if (!root.dataset.built) {
      root.dataset.built = "1";
      await buildReport(root);
    }
    await renderReport();
  }

  window.matcherViews = { ...(window.matcherViews || {}), orgfile: showFile, report: showReport };
})();
