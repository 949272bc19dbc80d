// ulvs monitor: live updates of the tables and charts (polls
// /api/overview every 2 s). No framework, no build step.
"use strict";
(function () {
  const page = document.body.dataset.page;
  if (page !== "overview") return;
  const live = document.getElementById("live");
  const detail = location.pathname === "/service";
  const svcParam = detail ? new URLSearchParams(location.search).get("svc") : "";
  const fmt = (v) => {
    let f = v, u = "";
    for (const s of ["k", "M", "G"]) { if (f < 1000) break; f /= 1000; u = s; }
    return u ? f.toFixed(1) + u : String(v);
  };
  const NS = "http://www.w3.org/2000/svg";
  function draw(svg, data) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!data || data.length < 2) return;
    const W = 300, H = 60, max = Math.max(1, ...data);
    const step = W / (data.length - 1);
    let d = "";
    data.forEach((v, i) => { d += (i ? "L" : "M") + (i * step).toFixed(1) + "," + (H - 2 - (v / max) * (H - 6)).toFixed(1); });
    const area = document.createElementNS(NS, "path");
    area.setAttribute("d", d + "L" + W + "," + H + "L0," + H + "Z");
    area.setAttribute("fill", "#1f6feb22");
    const line = document.createElementNS(NS, "path");
    line.setAttribute("d", d);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#1f6feb");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", "4"); t.setAttribute("y", "11"); t.setAttribute("font-size", "10"); t.setAttribute("fill", "#6a7380");
    t.textContent = "max " + fmt(max);
    svg.append(area, line, t);
  }
  function setText(el, v) { if (el && el.textContent !== v) el.textContent = v; }
  async function tick() {
    let o;
    try {
      const r = await fetch("/api/overview" + (svcParam ? "?svc=" + encodeURIComponent(svcParam) : ""), { credentials: "same-origin" });
      if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
      if (!r.ok) throw new Error(r.status);
      o = await r.json();
    } catch (e) { setText(live, "live updates stopped: " + e); return; }
    const shown = new Set();
    document.querySelectorAll("section.service").forEach((sec) => shown.add(sec.dataset.svc));
    let restructure = false;
    for (const s of o.services) {
      const sec = document.querySelector('section.service[data-svc="' + CSS.escape(s.id) + '"]');
      if (!sec) { if (!detail) restructure = true; continue; }
      shown.delete(s.id);
      setText(sec.querySelector('[data-sf="conns"]'), s.active + " + " + s.inact);
      setText(sec.querySelector('[data-sf="pps"]'), fmt(s.rate.in_pps + s.rate.out_pps));
      setText(sec.querySelector('[data-sf="cps"]'), fmt(s.rate.cps));
      const rows = sec.querySelectorAll("tr[data-id]");
      if (rows.length !== (s.real_servers || []).length) restructure = true;
      for (const rs of s.real_servers || []) {
        const tr = sec.querySelector('tr[data-id="' + CSS.escape(rs.id) + '"]');
        if (!tr) { restructure = true; continue; }
        const f = (n) => tr.querySelector('[data-f="' + n + '"]');
        setText(f("weight"), String(rs.weight));
        const h = f("health");
        setText(h, rs.health);
        setText(f("active"), String(rs.active));
        setText(f("inact"), String(rs.inact));
        setText(f("cps"), fmt(rs.rate.cps));
        setText(f("in_pps"), fmt(rs.rate.in_pps));
        setText(f("out_pps"), fmt(rs.rate.out_pps));
        setText(f("in_bps"), fmt(rs.rate.in_bps));
        setText(f("out_bps"), fmt(rs.rate.out_bps));
        tr.classList.toggle("draining", !!rs.draining);
      }
      const hs = o.history.series[s.id];
      sec.querySelectorAll("svg.chart").forEach((svg) => draw(svg, hs && hs[svg.dataset.series]));
    }
    if (!detail && shown.size) restructure = true;
    setText(document.querySelector('[data-g="drops"]'), String(o.drops));
    setText(document.querySelector('[data-g="standby"]'), String(o.standby));
    const tm = new Date(o.time);
    setText(live, "live · updated " + tm.toLocaleTimeString());
    document.body.dataset.updated = String(o.time);
    if (restructure && !document.querySelector("form.add input:focus, form.inline input:focus")) { location.reload(); }
  }
  tick();
  setInterval(tick, 2000);
})();
