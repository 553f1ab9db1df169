// Trade executor page: an order form, a live best bid/ask chart with fill markers (with the
// recent history the server keeps), the account, orders with filters and paging, and the
// fill log of the selected order. No build step. Server data is only ever set as text.
"use strict";

const $ = (selector) => document.querySelector(selector);
const MAX_ROWS = 500;             // order rows kept in the table
const QUOTE_STALE_S = 5;          // a quote older than this is flagged
const NO_QUOTE_WAIT_S = 10;       // after this long with no quote, the chart says so
const MAX_POINTS = 7200;          // chart points kept (one a second at most)
const MAX_FILLS = 20000;          // fills drawn on the chart, the oldest forgotten first
const FINAL = new Set(["filled", "expired", "cancelled", "rejected"]);

const state = {
  orders: new Map(),          // order_id -> order object
  selected: null,             // order_id whose fills are shown
  chartSymbol: "BTCUSDT",
  ws: null,
  backoffMs: 500,
  lastTime: { bid: 0, ask: 0 },
  points: [],                 // chart points, rising times: {time, bid, ask}
  fills: new Map(),           // "order_id:seq" -> {time, side, price, qty} of the chart symbol
  markers: { bid: [], ask: [] },
  markerGroups: new Map(),    // "side:time" -> [fills]: what the marker at that bar stands for
  symbols: new Map(),         // symbol -> GET /symbols answer (tick, step), or {unknown: true}
  quotes: new Map(),          // symbol -> {at: ms received, bid, ask}
  books: new Set(),           // symbols whose book channel this page has asked for
  filter: { symbol: "", status: "" },
  nextCursor: null,
  account: null,
  feed: null,                 // /readyz's feed state
  chartSince: 0,              // when the chart symbol was chosen (ms)
};

// ---- numbers shown to people -----------------------------------------------------------

// A price rounded to the symbol's tick (8 places while the tick is not known).
function price(symbol, text) {
  if (text === null || text === undefined) return "—";
  const places = placesOf(state.symbols.get(symbol)?.tick_size);
  return places === null ? trimZeros(roundText(text, 8)) : roundText(text, places);
}

// A quantity rounded to the symbol's step (8 places while it is not known), zeros trimmed.
function quantity(symbol, text) {
  if (text === null || text === undefined) return "—";
  const places = placesOf(state.symbols.get(symbol)?.step_size);
  return trimZeros(roundText(text, places === null ? 8 : places));
}

// A money amount (P&L, fees in the quote asset): the symbol's tick, or 8 places.
const money = price;

function plain(text, places = 8) {
  return text === null || text === undefined ? "—" : trimZeros(roundText(text, places));
}

// ---- HTTP ---------------------------------------------------------------------------

function token() { return localStorage.getItem("executor-token") || ""; }

let tokenAsked = null;  // one dialog at a time, shared by every request that needs it

function askToken() {
  if (tokenAsked) return tokenAsked;
  const dialog = $("#token-dialog");
  tokenAsked = new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener("close", onClose);
      tokenAsked = null;
      resolve(value);
    };
    const onClose = () => {
      const entered = dialog.returnValue === "ok" ? $("#token-input").value.trim() : "";
      $("#token-input").value = "";
      done(entered);
    };
    dialog.addEventListener("close", onClose);
    $("#token-input").value = "";
    dialog.showModal();
    $("#token-input").focus();
  });
  return tokenAsked;
}

$("#token-cancel").addEventListener("click", () => $("#token-dialog").close("cancel"));

function authHeaders(extra) {
  const headers = { ...extra };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  return headers;
}

async function api(method, path, body, retried) {
  const headers = authHeaders({ "Content-Type": "application/json" });
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  if (response.status === 401 && !retried) {
    const entered = await askToken();
    if (entered) {
      localStorage.setItem("executor-token", entered);
      if (state.ws) connect(true);
      return api(method, path, body, true);
    }
  }
  const payload = await response.json().catch(() => ({}));
  return { status: response.status, payload, headers: response.headers };
}

function errorText(payload) {
  const error = payload.error || {};
  const details = (error.details || []).map((d) => `${d.field}: ${d.message}`).join("; ");
  return details || error.message || "request failed";
}

// ---- symbols: tick and step ------------------------------------------------------------

async function loadSymbol(symbol) {
  if (state.symbols.has(symbol)) return state.symbols.get(symbol);
  state.symbols.set(symbol, {});  // asked once
  try {
    const response = await fetch(`/symbols/${encodeURIComponent(symbol)}`);
    if (response.status === 404) {
      state.symbols.set(symbol, { unknown: true });
    } else if (response.ok) {
      state.symbols.set(symbol, await response.json());
    }
  } catch (error) { /* shown unrounded to 8 places until a reload */ }
  const info = state.symbols.get(symbol);
  if (symbol === state.chartSymbol) applyChartFormat();
  for (const order of state.orders.values()) if (order.symbol === symbol) renderOrder(order, false);
  return info;
}

// ---- chart ----------------------------------------------------------------------------

const chart = LightweightCharts.createChart($("#chart"), {
  autoSize: true,
  layout: { background: { color: "#161b22" }, textColor: "#8b95a1" },
  grid: { vertLines: { color: "#1d232b" }, horzLines: { color: "#1d232b" } },
  timeScale: { timeVisible: true, secondsVisible: true, borderColor: "#262d36", rightOffset: 8 },
  rightPriceScale: { borderColor: "#262d36" },
  crosshair: { mode: 0 },
});
// With a spread of one tick the two lines lie on the same pixels: the bid is a wide solid
// line under a narrower dashed ask, so both stay visible whichever is on top.
const series = {
  bid: chart.addLineSeries({ color: "#26a69a", lineWidth: 3, title: "bid", lineType: 1 }),
  ask: chart.addLineSeries({
    color: "#ff7a78", lineWidth: 2, title: "ask", lineType: 1,
    lineStyle: LightweightCharts.LineStyle.Dashed,
  }),
};

function applyChartFormat() {
  const tick = state.symbols.get(state.chartSymbol)?.tick_size;
  const places = placesOf(tick);
  if (places === null) return;
  const priceFormat = { type: "price", precision: places, minMove: Number(tick) };
  for (const key of ["bid", "ask"]) series[key].applyOptions({ priceFormat });
}

function setChartStatus(text, isError) {
  const element = $("#chart-status");
  element.textContent = text;
  element.className = `chart-status ${isError ? "error" : ""}`;
}

function resetChart(symbol) {
  state.chartSymbol = symbol;
  state.chartSince = Date.now();
  state.lastTime = { bid: 0, ask: 0 };
  state.points = [];
  state.fills = new Map();
  state.markers = { bid: [], ask: [] };
  state.markerGroups = new Map();
  for (const key of ["bid", "ask"]) { series[key].setData([]); series[key].setMarkers([]); }
  $("#chart-symbol").textContent = symbol;
  setChartStatus(`waiting for ${symbol}…`, false);
  applyChartFormat();
}

// One point a second: several quotes in one second replace that second's point.
function plotQuote(seconds, bid, ask) {
  const last = state.points[state.points.length - 1];
  if (last && seconds < last.time) return;
  if (last && seconds === last.time) {
    if (bid !== null) last.bid = bid;
    if (ask !== null) last.ask = ask;
  } else {
    state.points.push({ time: seconds, bid, ask });
    if (state.points.length > MAX_POINTS) state.points.shift();
  }
  const point = state.points[state.points.length - 1];
  for (const key of ["bid", "ask"]) {
    if (point[key] !== null && Number.isFinite(point[key])) {
      series[key].update({ time: seconds, value: point[key] });
      state.lastTime[key] = seconds;
    }
  }
}

function setPoints(points) {
  state.points = points.slice(-MAX_POINTS);
  for (const key of ["bid", "ask"]) {
    const data = state.points.filter((p) => p[key] !== null).map((p) => ({ time: p.time, value: p[key] }));
    series[key].setData(data);
    state.lastTime[key] = data.length ? data[data.length - 1].time : 0;
  }
}

// The recent history the server keeps, merged before whatever arrived live meanwhile.
async function loadHistory(symbol) {
  let payload;
  try {
    const response = await fetch(`/book/${encodeURIComponent(symbol)}/history`);
    if (!response.ok) return;
    payload = await response.json();
  } catch (error) { return; }
  if (symbol !== state.chartSymbol) return;
  const live = state.points;
  const firstLive = live.length ? live[0].time : Infinity;
  const past = [];
  for (const point of payload.points) {
    const time = Math.floor(Date.parse(point.ts) / 1000);
    if (time >= firstLive) break;
    if (past.length && past[past.length - 1].time === time) continue;
    past.push({ time, bid: point.bid === null ? null : Number(point.bid),
      ask: point.ask === null ? null : Number(point.ask) });
  }
  if (past.length) setPoints(past.concat(live));
  if (payload.points.length && !live.length) {  // no live quote yet: the latest kept one
    const last = payload.points[payload.points.length - 1];
    noteQuote(symbol, Date.parse(last.ts), last.bid, last.ask, false);
    showQuote(symbol, last.bid, last.ask);
  }
  redrawMarkers();
}

// The bar a fill is drawn at: the last chart point at or before it.
function barTime(seconds) {
  const points = state.points;
  let low = 0; let high = points.length - 1; let found = null;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (points[middle].time <= seconds) { found = points[middle].time; low = middle + 1; } else high = middle - 1;
  }
  return found ?? (points.length ? points[0].time : seconds);
}

// Fills of one side in one bar make one marker; its fills are listed on hover.
function redrawMarkers() {
  const groups = new Map();
  for (const fill of state.fills.values()) {
    const time = barTime(fill.seconds);
    const key = `${fill.side}:${time}`;
    if (!groups.has(key)) groups.set(key, { time, side: fill.side, fills: [] });
    groups.get(key).fills.push(fill);
  }
  state.markerGroups = groups;
  const markers = { bid: [], ask: [] };
  for (const group of groups.values()) {
    const buy = group.side === "buy";
    const count = group.fills.length;
    markers[buy ? "ask" : "bid"].push({
      time: group.time, position: buy ? "belowBar" : "aboveBar",
      color: buy ? "#26a69a" : "#ef5350", shape: buy ? "arrowUp" : "arrowDown",
      text: count > 1 ? `×${count}` : "", size: count > 1 ? 1.5 : 1,
    });
  }
  for (const key of ["bid", "ask"]) {
    markers[key].sort((a, b) => a.time - b.time);
    series[key].setMarkers(markers[key]);
  }
  state.markers = markers;
}

let markerTimer = null;  // a burst of fills redraws the markers once
function markFill(order, fill) {
  if (order.symbol !== state.chartSymbol) return;
  const key = `${order.order_id}:${fill.seq}`;
  if (state.fills.has(key)) return;
  const seconds = Math.floor(Date.parse(fill.ts) / 1000);
  if (state.fills.size >= MAX_FILLS) state.fills.delete(state.fills.keys().next().value);
  state.fills.set(key, { seconds, side: order.side, price: fill.price, qty: fill.qty, orderId: order.order_id, seq: fill.seq });
  if (!state.points.length) plotQuote(seconds, order.side === "sell" ? Number(fill.price) : null,
    order.side === "buy" ? Number(fill.price) : null);
  if (!markerTimer) markerTimer = setTimeout(() => { markerTimer = null; redrawMarkers(); }, 50);
}

function groupSummary(group) {
  const symbol = state.chartSymbol;
  let qty = 0; let notional = 0;
  for (const fill of group.fills) { qty += Number(fill.qty); notional += Number(fill.qty) * Number(fill.price); }
  const average = qty ? String(notional / qty) : null;
  const orders = new Set(group.fills.map((f) => f.orderId)).size;
  return `${group.fills.length} ${group.side} fill${group.fills.length > 1 ? "s" : ""}` +
    ` (${orders} order${orders > 1 ? "s" : ""}): ${quantity(symbol, String(qty))} @ avg ${price(symbol, average)}`;
}

chart.subscribeCrosshairMove((param) => {
  const tip = $("#chart-tip");
  if (!param.time || !param.point) { tip.hidden = true; return; }
  const lines = [];
  for (const side of ["buy", "sell"]) {
    const group = state.markerGroups.get(`${side}:${param.time}`);
    if (group) lines.push(groupSummary(group));
  }
  if (!lines.length) { tip.hidden = true; return; }
  tip.textContent = lines.join("\n");
  tip.hidden = false;
  const wrap = $("#chart-wrap").getBoundingClientRect();
  tip.style.left = `${Math.min(param.point.x + 12, wrap.width - tip.offsetWidth - 4)}px`;
  tip.style.top = `${Math.max(param.point.y - tip.offsetHeight - 8, 0)}px`;
});

function noteQuote(symbol, at, bid, ask, live) {
  const previous = state.quotes.get(symbol);
  if (previous && previous.at > at) return;
  state.quotes.set(symbol, { at, bid, ask, live });
  renderQuoteAges();
}

// The chart symbol's best bid and ask (and spread) in the header.
function showQuote(symbol, bidText, askText) {
  const quote = $("#quote");
  const bid = document.createElement("b"); bid.className = "bid"; bid.textContent = price(symbol, bidText);
  const ask = document.createElement("b"); ask.className = "ask"; ask.textContent = price(symbol, askText);
  const parts = [`${symbol} `, bid, " / ", ask];
  if (bidText !== null && askText !== null) {
    const spread = document.createElement("span");
    spread.className = "spread";
    // Display only: the float difference is rounded to the tick (or 8 places).
    spread.textContent = ` spread ${price(symbol, (Number(askText) - Number(bidText)).toFixed(12))}`;
    parts.push(spread);
  }
  quote.replaceChildren(...parts);
  quote.classList.remove("muted");
  setChartStatus("", false);
}

function onBook(message) {
  noteQuote(message.symbol, Date.parse(message.ts), message.bid, message.ask, true);
  if (message.symbol !== state.chartSymbol) return;
  const seconds = Math.floor(Date.parse(message.ts) / 1000);
  plotQuote(seconds, message.bid === null ? null : Number(message.bid),
    message.ask === null ? null : Number(message.ask));
  showQuote(message.symbol, message.bid, message.ask);
  if (message.bids || message.asks) renderDepth(message);
}

// In depth mode the book frame carries the visible levels too.
function renderDepth(message) {
  const symbol = message.symbol;
  const rows = (levels, className) => (levels || []).map(([p, q]) => {
    const row = document.createElement("tr");
    row.className = className;
    row.append(cell(price(symbol, p)), cell(quantity(symbol, q)));
    return row;
  });
  $("#depth-asks").replaceChildren(...rows(message.asks, "ask").reverse());
  $("#depth-bids").replaceChildren(...rows(message.bids, "bid"));
  $("#depth").hidden = false;
}

// ---- quote ages and the feed ------------------------------------------------------------

function renderQuoteAges() {
  const list = $("#quote-ages");
  const now = Date.now();
  const items = [];
  for (const symbol of [...state.books].sort()) {
    const quote = state.quotes.get(symbol);
    const item = document.createElement("li");
    item.dataset.symbol = symbol;
    if (!quote) {
      item.className = "age none";
      item.textContent = `${symbol}: no quote yet`;
    } else {
      const age = now - quote.at;
      item.className = `age ${age > QUOTE_STALE_S * 1000 ? "stale" : "fresh"}`;
      item.dataset.ageS = String(Math.round(age / 1000));
      item.textContent = `${symbol}: quote ${ago(age)} old`;
    }
    items.push(item);
  }
  list.replaceChildren(...items);
  const chartQuote = state.quotes.get(state.chartSymbol);
  const waited = now - state.chartSince;
  const info = state.symbols.get(state.chartSymbol);
  if (info?.unknown) {
    setChartStatus(`${state.chartSymbol} is not listed by the exchange: no quotes will come.`, true);
  } else if (!chartQuote && waited > NO_QUOTE_WAIT_S * 1000) {
    setChartStatus(`No quote for ${state.chartSymbol} in ${ago(waited)}: the symbol may not exist, or the feed is down.`, true);
  } else if (chartQuote && now - chartQuote.at > QUOTE_STALE_S * 1000) {
    setChartStatus(`${state.chartSymbol}: last quote ${ago(now - chartQuote.at)} ago.`, true);
  }
}

function renderBanner() {
  const banner = $("#banner");
  const problems = [];
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
    if (state.everOpened) problems.push("Disconnected from the service: reconnecting; what is shown may be out of date.");
  }
  // An outage has begun (a drop, a stall, a refused connect) and no socket is open again:
  // a feed with no stream to carry yet has no connection and is not down.
  const feed = state.feed;
  const feedDown = Boolean(feed && feed.down_since);
  if (feedDown) {
    const since = feed.down_since ? ` since ${new Date(feed.down_since).toLocaleTimeString()}` : "";
    problems.push(`Market data feed is down${since}: no quotes, no fills until it is back.`);
  }
  if (state.readyError) problems.push(`Service not ready: ${state.readyError}.`);
  banner.hidden = problems.length === 0;
  banner.dataset.feed = feedDown ? "down" : "up";
  banner.textContent = problems.join(" ");
}

async function pollReady() {
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const body = await response.json();
    state.feed = body.feed || null;
    state.readyError = response.status === 200 ? null : `database ${body.database}, bus ${body.bus}`;
  } catch (error) {
    state.readyError = "the service does not answer";
  }
  renderBanner();
}

// ---- orders table and fills -------------------------------------------------------------

function cell(text, className, label) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (label) td.dataset.label = label;
  return td;
}

function matchesFilter(order) {
  const { symbol, status } = state.filter;
  return (!symbol || order.symbol === symbol) && (!status || order.status === status);
}

function expiryText(order) {
  if (FINAL.has(order.status)) {
    return order.status === "expired" ? "expired" : "—";
  }
  const left = Date.parse(order.expires_at) - Date.now();
  return left > 0 ? `in ${ago(left)}` : "now";
}

function statusCell(order) {
  const td = document.createElement("td");
  td.dataset.label = "Status";
  const badge = document.createElement("span");
  badge.className = `badge ${order.status}`;
  badge.textContent = order.status.replace("_", " ");
  td.append(badge);
  if (order.reason) {
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = order.reason;
    td.append(reason);
  }
  return td;
}

function idCell(order) {
  const td = document.createElement("td");
  td.className = "id";
  td.dataset.label = "Order";
  const open = document.createElement("button");
  open.type = "button";
  open.className = "link open";
  open.textContent = shortId(order.order_id);
  open.title = order.order_id;
  open.setAttribute("aria-label", `Open order ${order.order_id}`);
  open.addEventListener("click", (event) => { event.stopPropagation(); select(order.order_id); });
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "link copy";
  copy.textContent = "copy";
  copy.setAttribute("aria-label", `Copy order id ${order.order_id}`);
  copy.addEventListener("click", async (event) => {
    event.stopPropagation();
    try {
      await navigator.clipboard.writeText(order.order_id);
      copy.textContent = "copied";
    } catch (error) {
      window.getSelection().selectAllChildren(open);  // no clipboard: select it to copy
      copy.textContent = "selected";
    }
    setTimeout(() => { copy.textContent = "copy"; }, 1500);
  });
  td.append(open, copy);
  return td;
}

function renderOrder(order, flash) {
  state.orders.set(order.order_id, { ...state.orders.get(order.order_id), ...order });
  order = state.orders.get(order.order_id);
  if (!state.symbols.has(order.symbol)) loadSymbol(order.symbol);
  const body = $("#orders tbody");
  let row = body.querySelector(`tr[data-order-id="${CSS.escape(order.order_id)}"]`);
  if (!matchesFilter(order)) { if (row) row.remove(); return; }
  if (!row) {
    row = document.createElement("tr");
    row.dataset.orderId = order.order_id;
    row.tabIndex = -1;
    row.addEventListener("click", () => select(order.order_id));
    // Rows are kept newest first.
    const later = [...body.rows].find((r) => r.dataset.orderId < order.order_id);
    body.insertBefore(row, later || null);
    // New orders push the oldest rows out, but pages asked for with "Older orders" stay.
    if (!state.paging) while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    countOrders();
  }
  const symbol = order.symbol;
  const filled = Number(order.filled_qty);
  const percent = Number(order.order_size) ? (filled / Number(order.order_size)) * 100 : 0;
  row.dataset.status = order.status;
  const progress = document.createElement("td");
  progress.dataset.label = "Filled";
  const bar = document.createElement("span");
  bar.className = "progress";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuenow", String(Math.round(percent)));
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-label", `filled ${percent.toFixed(1)}%`);
  const inner = document.createElement("span");
  inner.style.width = `${percent.toFixed(1)}%`;
  bar.append(inner);
  progress.append(bar, `${quantity(symbol, order.filled_qty)} (${percent.toFixed(percent > 0 && percent < 1 ? 2 : 0)}%)`);
  const actions = document.createElement("td");
  actions.dataset.label = "";
  if (!FINAL.has(order.status)) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link cancel";
    button.textContent = "cancel";
    button.setAttribute("aria-label", `Cancel order ${order.order_id}`);
    button.addEventListener("click", async (event) => {
      event.stopPropagation();
      const { status, payload } = await api("DELETE", `/orders/${encodeURIComponent(order.order_id)}`);
      if (status === 200) renderOrder(payload, false); else message(errorText(payload), true);
    });
    actions.append(button);
  }
  const type = order.type === "market" ? "market" : `limit ${order.time_in_force || ""}`.trim();
  const expires = cell(expiryText(order), "expires", "Expires");
  expires.title = order.expires_at;
  row.replaceChildren(
    idCell(order),
    cell(symbol, "", "Symbol"),
    cell(order.side, `side-${order.side}`, "Side"),
    cell(type, "", "Type"),
    cell(quantity(symbol, order.order_size), "", "Size"),
    cell(order.price === null || order.price === undefined ? "market" : price(symbol, order.price), "", "Limit"),
    statusCell(order),
    progress,
    cell(quantity(symbol, order.remaining_qty), "remaining", "Remaining"),
    cell(price(symbol, order.avg_price), "avg", "Avg price"),
    cell(order.fees && order.fees !== "0" ? `${plain(order.fees)} ${order.fee_asset || ""}` : "—", "", "Fees"),
    expires,
    cell(new Date(order.created_at).toLocaleTimeString(), "", "Created"),
    actions,
  );
  row.classList.toggle("selected", order.order_id === state.selected);
  row.setAttribute("aria-selected", String(order.order_id === state.selected));
  if (flash) { row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
  if (order.order_id === state.selected) renderFillsDetail(order);
}

function renderFillsDetail(order) {
  const left = FINAL.has(order.status) ? "" : `, expires ${expiryText(order)}`;
  const why = order.reason ? `: ${order.reason}` : "";
  $("#fills-detail").textContent = `${order.side} ${quantity(order.symbol, order.order_size)} ${order.symbol}` +
    ` — ${order.status.replace("_", " ")}${why}${left}; remaining ${quantity(order.symbol, order.remaining_qty)}`;
}

function renderFill(order, fill) {
  const body = $("#fills tbody");
  if (body.querySelector(`tr[data-seq="${fill.seq}"]`)) return;
  const row = document.createElement("tr");
  row.dataset.seq = fill.seq;
  const symbol = order.symbol;
  row.append(cell(fill.seq, "", "#"), cell(new Date(fill.ts).toLocaleTimeString(), "", "Time"),
    cell(price(symbol, fill.price), "", "Price"), cell(quantity(symbol, fill.qty), "", "Qty"),
    cell(fill.fee ? `${plain(fill.fee)} ${fill.fee_asset || ""}` : "—", "", "Fee"),
    cell(fill.update_id, "", "Update id"));
  const next = [...body.rows].find((r) => Number(r.dataset.seq) < fill.seq);
  body.insertBefore(row, next || null);
}

function select(orderId) {
  if (state.selected && state.selected !== orderId) {
    send({ op: "unsubscribe", order_id: state.selected });
  }
  state.selected = orderId;
  const order = state.orders.get(orderId);
  $("#fills tbody").replaceChildren();
  $("#fills-order").textContent = `${shortId(orderId)} ${order ? order.symbol : ""}`;
  $("#fills-order").title = orderId;
  for (const row of document.querySelectorAll("#orders tbody tr")) {
    const selected = row.dataset.orderId === orderId;
    row.classList.toggle("selected", selected);
    row.setAttribute("aria-selected", String(selected));
  }
  if (order) { renderFillsDetail(order); if (order.symbol !== state.chartSymbol) watchSymbol(order.symbol); }
  send({ op: "subscribe", order_id: orderId });  // snapshot with every fill, then live
}

function subscribeBook(symbol) {
  if (state.books.has(symbol)) return;
  state.books.add(symbol);
  send({ op: "subscribe", channel: "book", symbol });
  renderQuoteAges();
}

function unsubscribeBook(symbol) {
  if (!state.books.delete(symbol)) return;
  send({ op: "unsubscribe", channel: "book", symbol });
  state.quotes.delete(symbol);
}

// Symbols with open orders keep their quote (and its age) in view; others are let go.
function syncBooks() {
  const wanted = new Set([state.chartSymbol]);
  for (const order of state.orders.values()) if (!FINAL.has(order.status) && wanted.size < 8) wanted.add(order.symbol);
  for (const symbol of [...state.books]) if (!wanted.has(symbol)) unsubscribeBook(symbol);
  for (const symbol of wanted) subscribeBook(symbol);
}

function watchSymbol(symbol) {
  symbol = symbol.toUpperCase();
  if (symbol === state.chartSymbol) return;
  resetChart(symbol);
  syncBooks();
  loadSymbol(symbol).then((info) => { if (info?.unknown) renderQuoteAges(); });
  loadHistory(symbol).then(() => loadPastFills(symbol));
}

// ---- websocket --------------------------------------------------------------------------

function setConnection(text, up) {
  const pill = $("#conn");
  pill.textContent = text;
  pill.dataset.state = up ? "open" : "closed";
  pill.className = `pill ${up ? "pill-up" : "pill-down"}`;
  renderBanner();
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function connect(force) {
  if (state.ws && !force) return;
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const params = new URLSearchParams({ channel: "orders" });
  if (token()) params.set("token", token());
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?${params}`);
  state.ws = ws;
  setConnection("connecting…", false);
  ws.onopen = () => {
    if (state.everOpened) reloadOrders();  // catch up on what happened while disconnected
    state.everOpened = true;
    state.backoffMs = 500;
    const books = [...state.books];
    state.books.clear();
    for (const symbol of books) subscribeBook(symbol);
    syncBooks();
    send({ op: "subscribe", channel: "account" });
    if (state.selected) send({ op: "subscribe", order_id: state.selected });
    setConnection("live", true);
  };
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    state.ws = null;
    const delay = state.backoffMs * (0.5 + Math.random() / 2);
    state.backoffMs = Math.min(state.backoffMs * 2, 10000);
    setConnection(`reconnecting in ${(delay / 1000).toFixed(1)}s (${event.code})`, false);
    setTimeout(() => connect(false), delay);
  };
}

function onMessage(message) {
  if (message.type === "book") return onBook(message);
  if (message.type === "account") return renderAccount(message);
  if (message.type === "error") return message_(message.message);
  if (message.type !== "order") return;
  const order = message.order;
  const wasFinal = FINAL.has(state.orders.get(order.order_id)?.status);
  renderOrder(order, message.event === "fill");
  if (message.event === "fill") markFill(order, message.fill);
  if (message.event === "snapshot") for (const fill of order.fills || []) markFill(order, fill);
  if (order.order_id === state.selected) {
    if (message.event === "snapshot") (order.fills || []).forEach((fill) => renderFill(order, fill));
    if (message.fill) renderFill(order, message.fill);
  }
  if (FINAL.has(order.status) !== wasFinal || message.event === "accepted") syncBooks();
}

function message_(text) { message(text, true); }

function message(text, isError) {
  const element = $("#form-message");
  element.textContent = text;
  element.className = `message ${isError ? "error" : "ok"}`;
}

// ---- account ----------------------------------------------------------------------------

function renderAccount(account) {
  state.account = account;
  const balances = (account.balances || []).map((b) => {
    const row = document.createElement("tr");
    row.dataset.asset = b.asset;
    row.append(cell(b.asset, "", "Asset"), cell(plain(b.free), "free", "Free"), cell(plain(b.locked), "locked", "Locked"));
    return row;
  });
  if (!balances.length) {
    const row = document.createElement("tr");
    const td = cell("no balances yet", "muted");
    td.colSpan = 3;
    row.append(td);
    balances.push(row);
  }
  $("#balances tbody").replaceChildren(...balances);
  const positions = (account.positions || []).map((p) => {
    const row = document.createElement("tr");
    row.dataset.symbol = p.symbol;
    const pnl = (value, label) => {
      const td = cell(value === null ? "—" : money(p.symbol, value), "", label);
      if (value !== null && Number(value) !== 0) td.classList.add(Number(value) > 0 ? "gain" : "loss");
      return td;
    };
    row.append(cell(p.symbol, "", "Symbol"), cell(quantity(p.symbol, p.qty), "qty", "Qty"),
      cell(price(p.symbol, p.avg_entry_price), "", "Avg entry"),
      pnl(p.realized_pnl, "Realized"), pnl(p.unrealized_pnl, "Unrealized"),
      cell(money(p.symbol, p.fees), "fees", "Fees"));
    if (!state.symbols.has(p.symbol)) loadSymbol(p.symbol).then(() => renderAccount(state.account));
    return row;
  });
  $("#positions tbody").replaceChildren(...positions);
  $("#account-age").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// ---- loading, filtering and paging orders ------------------------------------------------

function ordersQuery(cursor) {
  const params = new URLSearchParams({ limit: "50" });
  if (state.filter.symbol) params.set("symbol", state.filter.symbol);
  if (state.filter.status) params.set("status", state.filter.status);
  if (cursor) params.set("cursor", cursor);
  return `/orders?${params}`;
}

async function loadOrders(cursor) {
  const { status, payload } = await api("GET", ordersQuery(cursor));
  if (status !== 200) { if (payload.error) message(errorText(payload), true); return; }
  state.paging = Boolean(cursor);
  try {
    for (const order of payload.orders) renderOrder(order, false);
  } finally {
    state.paging = false;
  }
  state.nextCursor = payload.next_cursor;
  $("#older").hidden = !payload.next_cursor;
  countOrders();
}

function countOrders() {
  const rows = $("#orders tbody").rows.length;
  $("#orders-count").textContent = `${rows} order${rows === 1 ? "" : "s"} shown${state.nextCursor ? ", older ones on the next page" : ""}`;
}

async function reloadOrders() {
  $("#orders tbody").replaceChildren();
  await loadOrders(null);
  syncBooks();
}

// Fills of recent orders of the chart symbol, so a page opened late shows them.
async function loadPastFills(symbol) {
  const since = state.points.length ? state.points[0].time * 1000 : Date.now() - 15 * 60 * 1000;
  const candidates = [...state.orders.values()].filter((o) => o.symbol === symbol &&
    Number(o.filled_qty) > 0 && Date.parse(o.updated_at) >= since).slice(0, 50);
  await Promise.all(candidates.map(async (order) => {
    const { status, payload } = await api("GET", `/orders/${encodeURIComponent(order.order_id)}`);
    if (status !== 200 || symbol !== state.chartSymbol) return;
    for (const fill of payload.fills || []) markFill(payload, fill);
  }));
  redrawMarkers();
}

$("#orders-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  const symbol = $("#o-symbol").value.trim().toUpperCase();
  if (symbol && !/^[A-Z0-9]{2,20}$/.test(symbol)) { message("filter: the symbol must be 2-20 letters or digits", true); return; }
  state.filter = { symbol, status: $("#o-status").value };
  $("#cancel-all").textContent = symbol ? `Cancel all open ${symbol}` : "Cancel all open";
  reloadOrders();
});
$("#o-status").addEventListener("change", () => $("#orders-filter").requestSubmit());
$("#older").addEventListener("click", () => loadOrders(state.nextCursor));

// Cancel-all asks to be pressed twice, so one stray click cancels nothing.
let cancelAllArmed = null;
$("#cancel-all").addEventListener("click", async () => {
  const button = $("#cancel-all");
  const symbol = state.filter.symbol;
  if (!cancelAllArmed) {
    button.dataset.armed = "true";
    button.textContent = `Confirm: cancel every open ${symbol || ""} order`.replace("  ", " ");
    cancelAllArmed = setTimeout(() => {
      cancelAllArmed = null; delete button.dataset.armed;
      button.textContent = symbol ? `Cancel all open ${symbol}` : "Cancel all open";
    }, 4000);
    return;
  }
  clearTimeout(cancelAllArmed); cancelAllArmed = null; delete button.dataset.armed;
  button.textContent = symbol ? `Cancel all open ${symbol}` : "Cancel all open";
  const path = symbol ? `/orders?symbol=${encodeURIComponent(symbol)}` : "/orders";
  const { status, payload } = await api("DELETE", path);
  if (status !== 200) { message(errorText(payload), true); return; }
  for (const order of payload.cancelled || []) renderOrder(order, false);
  message(`cancelled ${(payload.cancelled || []).length} order(s)`, false);
});

// GET /fills with Accept: text/csv, page after page (X-Next-Cursor), saved as one file.
async function exportFills() {
  const parts = [];
  let cursor = null;
  for (let page = 0; page < 100; page += 1) {
    const params = new URLSearchParams({ limit: "500" });
    if (state.filter.symbol) params.set("symbol", state.filter.symbol);
    if (cursor) params.set("cursor", cursor);
    let response = await fetch(`/fills?${params}`, { headers: authHeaders({ Accept: "text/csv" }) });
    if (response.status === 401) {
      const entered = await askToken();
      if (!entered) return;
      localStorage.setItem("executor-token", entered);
      response = await fetch(`/fills?${params}`, { headers: authHeaders({ Accept: "text/csv" }) });
    }
    if (!response.ok) {
      message(response.status === 404 ? "this server has no fills export (GET /fills)" : `fills export failed (${response.status})`, true);
      return;
    }
    const text = await response.text();
    parts.push(page === 0 ? text : text.slice(text.indexOf("\n") + 1));
    cursor = response.headers.get("X-Next-Cursor");
    if (!cursor) break;
  }
  const blob = new Blob(parts, { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `fills${state.filter.symbol ? "-" + state.filter.symbol : ""}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  message("fills exported", false);
}
$("#export-fills").addEventListener("click", () => exportFills().catch((error) => message(`fills export failed: ${error}`, true)));

// ---- form -------------------------------------------------------------------------------

// A market order has no price and no timeout of its own.
$("#f-kind").addEventListener("change", () => {
  const market = $("#f-kind").value === "market";
  for (const id of ["#f-price", "#f-timeout"]) $(id).disabled = market;
  $("#f-price").required = !market;
});

$("#order-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const kind = form.get("kind");
  const body = {
    symbol: form.get("symbol").trim().toUpperCase(),
    side: form.get("side"),
    order_size: form.get("order_size").trim(),
  };
  if (kind !== "market") {
    body.price = form.get("price").trim();
    body.time_in_force = kind;
    const timeout = form.get("timeout_s").trim();
    if (timeout) body.timeout_s = Number(timeout);
  }
  const previous = state.chartSymbol;
  watchSymbol(body.symbol);
  $("#submit").disabled = true;
  try {
    const path = kind === "market" ? "/order/market" : "/order/limit";
    const { status, payload } = await api("POST", path, body);
    if (status === 202 || status === 200) {
      renderOrder(payload, false);
      select(payload.order_id);
      message(`accepted ${shortId(payload.order_id)}: ${payload.side} ${payload.order_size} ${payload.symbol} @ ${payload.price ?? "market"}`, false);
    } else {
      message(errorText(payload), true);
      if (payload.error && payload.error.code === "unknown_symbol") {
        state.symbols.set(body.symbol, { unknown: true });
        watchSymbol(previous);
      }
    }
  } catch (error) {
    message(`could not reach the service: ${error}`, true);
  } finally {
    $("#submit").disabled = false;
  }
});

// Countdowns and quote ages move once a second.
setInterval(() => {
  for (const row of document.querySelectorAll("#orders tbody tr")) {
    const order = state.orders.get(row.dataset.orderId);
    const expires = row.querySelector("td.expires");
    if (order && expires && !FINAL.has(order.status)) expires.textContent = expiryText(order);
  }
  if (state.selected && state.orders.has(state.selected)) renderFillsDetail(state.orders.get(state.selected));
  renderQuoteAges();
}, 1000);

// For scripts and browser tests: the page's live state (orders, markers, chart symbol).
window.executor = { state, chart, series, roundText, price, quantity };

resetChart(state.chartSymbol);
loadSymbol(state.chartSymbol);
setInterval(pollReady, 3000);
pollReady();
// The first request asks for a token if the service needs one; the socket then uses it.
loadOrders(null).finally(() => {
  connect(false);
  loadHistory(state.chartSymbol).then(() => loadPastFills(state.chartSymbol));
});
