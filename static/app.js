// Trade executor page: an order form, a live best bid/ask chart with fill markers,
// recent orders with progress, and the fill log of the selected order. No build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = {
  orders: new Map(),          // order_id -> order object
  selected: null,             // order_id whose fills are shown
  chartSymbol: "BTCUSDT",
  ws: null,
  backoffMs: 500,
  lastTime: { bid: 0, ask: 0 },
  markers: { bid: [], ask: [] },
};

// ---- HTTP ---------------------------------------------------------------------------

function token() { return localStorage.getItem("executor-token") || ""; }

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  if (response.status === 401 && !state.asking) {
    state.asking = true;  // ask once, not once per request
    const entered = prompt("This service needs an API token:");
    state.asking = false;
    if (entered) {
      localStorage.setItem("executor-token", entered.trim());
      if (state.ws) connect(true);
      return api(method, path, body);
    }
  }
  const payload = await response.json().catch(() => ({}));
  return { status: response.status, payload };
}

function errorText(payload) {
  const error = payload.error || {};
  const details = (error.details || []).map((d) => `${d.field}: ${d.message}`).join("; ");
  return details || error.message || "request failed";
}

// ---- chart ----------------------------------------------------------------------------

const chart = LightweightCharts.createChart($("#chart"), {
  autoSize: true,
  layout: { background: { color: "#161b22" }, textColor: "#7d8794" },
  grid: { vertLines: { color: "#1d232b" }, horzLines: { color: "#1d232b" } },
  timeScale: { timeVisible: true, secondsVisible: true, borderColor: "#262d36", rightOffset: 8 },
  rightPriceScale: { borderColor: "#262d36" },
  crosshair: { mode: 0 },
});
const series = {
  bid: chart.addLineSeries({ color: "#26a69a", lineWidth: 2, title: "bid" }),
  ask: chart.addLineSeries({ color: "#ef5350", lineWidth: 2, title: "ask" }),
};

function resetChart(symbol) {
  state.chartSymbol = symbol;
  state.lastTime = { bid: 0, ask: 0 };
  state.markers = { bid: [], ask: [] };
  for (const key of ["bid", "ask"]) { series[key].setData([]); series[key].setMarkers([]); }
  $("#chart-symbol").textContent = symbol;
  $("#quote").textContent = `waiting for ${symbol}…`;
}

function plot(key, seconds, value) {
  // The chart needs rising times: several quotes in one second replace that second's point.
  if (seconds < state.lastTime[key] || !Number.isFinite(value)) return;
  state.lastTime[key] = seconds;
  series[key].update({ time: seconds, value });
}

function onBook(message) {
  if (message.symbol !== state.chartSymbol) return;
  const seconds = Math.floor(Date.parse(message.ts) / 1000);
  if (message.bid !== null) plot("bid", seconds, Number(message.bid));
  if (message.ask !== null) plot("ask", seconds, Number(message.ask));
  $("#quote").innerHTML = `${message.symbol} <b class="bid">${message.bid}</b> / ` +
    `<b class="ask">${message.ask}</b>`;
}

function markFill(order, fill) {
  if (order.symbol !== state.chartSymbol) return;
  const buy = order.side === "buy";
  const key = buy ? "ask" : "bid";  // a buy takes the ask, a sell takes the bid
  const seconds = Math.max(Math.floor(Date.parse(fill.ts) / 1000), state.lastTime[key]);
  plot(key, seconds, Number(fill.price));
  state.markers[key].push({
    time: seconds, position: buy ? "belowBar" : "aboveBar", color: buy ? "#26a69a" : "#ef5350",
    shape: buy ? "arrowUp" : "arrowDown", text: `${fill.qty} @ ${fill.price}`,
  });
  series[key].setMarkers(state.markers[key]);
}

// ---- orders table and fills -------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderOrder(order, flash) {
  state.orders.set(order.order_id, { ...state.orders.get(order.order_id), ...order });
  order = state.orders.get(order.order_id);
  const body = $("#orders tbody");
  let row = body.querySelector(`tr[data-order-id="${order.order_id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.orderId = order.order_id;
    row.addEventListener("click", () => select(order.order_id));
    body.prepend(row);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  }
  const fraction = Number(order.filled_qty) / Number(order.order_size);
  row.dataset.status = order.status;
  row.replaceChildren(
    cell(order.order_id.slice(0, 8), "id"),
    cell(order.symbol),
    cell(order.side, `side-${order.side}`),
    cell(order.order_size),
    cell(order.price ?? "market"),
  );
  const status = document.createElement("td");
  status.innerHTML = `<span class="badge ${order.status}">${order.status.replace("_", " ")}</span>`;
  const progress = document.createElement("td");
  progress.innerHTML = `<span class="progress" role="progressbar" aria-valuenow="${Math.round(fraction * 100)}"
    aria-valuemin="0" aria-valuemax="100"><span style="width:${(fraction * 100).toFixed(1)}%"></span></span>`;
  progress.append(`${order.filled_qty}`);
  const cancel = document.createElement("td");
  if (order.status === "open" || order.status === "partially_filled") {
    const button = document.createElement("button");
    button.className = "link";
    button.textContent = "cancel";
    button.addEventListener("click", async (event) => {
      event.stopPropagation();
      const { status, payload } = await api("DELETE", `/orders/${order.order_id}`);
      if (status !== 200) message(errorText(payload), true);
    });
    cancel.append(button);
  }
  row.append(status, progress, cell(order.avg_price ?? "—"),
    cell(new Date(order.created_at).toLocaleTimeString()), cancel);
  row.classList.toggle("selected", order.order_id === state.selected);
  if (flash) { row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
}

function renderFill(fill) {
  const body = $("#fills tbody");
  if (body.querySelector(`tr[data-seq="${fill.seq}"]`)) return;
  const row = document.createElement("tr");
  row.dataset.seq = fill.seq;
  row.append(cell(fill.seq), cell(new Date(fill.ts).toLocaleTimeString()), cell(fill.price),
    cell(fill.qty), cell(fill.update_id));
  body.prepend(row);
}

function select(orderId) {
  if (state.selected && state.selected !== orderId) {
    send({ op: "unsubscribe", order_id: state.selected });
  }
  state.selected = orderId;
  const order = state.orders.get(orderId);
  $("#fills tbody").replaceChildren();
  $("#fills-order").textContent = `${orderId.slice(0, 8)} ${order ? order.symbol : ""}`;
  for (const row of document.querySelectorAll("#orders tbody tr")) {
    row.classList.toggle("selected", row.dataset.orderId === orderId);
  }
  if (order && order.symbol !== state.chartSymbol) watchSymbol(order.symbol);
  send({ op: "subscribe", order_id: orderId });  // snapshot with every fill, then live
}

function watchSymbol(symbol) {
  symbol = symbol.toUpperCase();
  if (symbol === state.chartSymbol) return;
  send({ op: "unsubscribe", channel: "book", symbol: state.chartSymbol });
  resetChart(symbol);
  send({ op: "subscribe", channel: "book", symbol });
}

// ---- websocket --------------------------------------------------------------------------

function setConnection(text, up) {
  const pill = $("#conn");
  pill.textContent = text;
  pill.dataset.state = up ? "open" : "closed";
  pill.className = `pill ${up ? "pill-up" : "pill-down"}`;
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function connect(force) {
  if (state.ws && !force) return;
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const params = new URLSearchParams({ channel: "orders", book: state.chartSymbol });
  if (state.selected) params.set("order_id", state.selected);
  if (token()) params.set("token", token());
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?${params}`);
  state.ws = ws;
  setConnection("connecting…", false);
  ws.onopen = () => {
    if (state.everOpened) loadOrders();  // catch up on what happened while disconnected
    state.everOpened = true;
    state.backoffMs = 500;
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
  if (message.type === "error") return message_(message.message);
  if (message.type !== "order") return;
  const order = message.order;
  renderOrder(order, message.event === "fill");
  if (message.event === "fill") markFill(order, message.fill);
  if (order.order_id === state.selected) {
    if (message.event === "snapshot") (order.fills || []).forEach(renderFill);
    if (message.fill) renderFill(message.fill);
  }
}

function message_(text) { message(text, true); }

function message(text, isError) {
  const element = $("#form-message");
  element.textContent = text;
  element.className = `message ${isError ? "error" : "ok"}`;
}

async function loadOrders() {
  const { status, payload } = await api("GET", "/orders?limit=50");
  if (status !== 200) return;
  for (const order of payload.orders.slice().reverse()) renderOrder(order, false);
}

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
  watchSymbol(body.symbol);
  $("#submit").disabled = true;
  try {
    const path = kind === "market" ? "/order/market" : "/order/limit";
    const { status, payload } = await api("POST", path, body);
    if (status === 202 || status === 200) {
      renderOrder(payload, false);
      select(payload.order_id);
      message(`accepted ${payload.order_id.slice(0, 8)}: ${payload.side} ${payload.order_size} ${payload.symbol} @ ${payload.price ?? "market"}`, false);
    } else {
      message(errorText(payload), true);
    }
  } catch (error) {
    message(`could not reach the service: ${error}`, true);
  } finally {
    $("#submit").disabled = false;
  }
});

// For scripts and browser tests: the page's live state (orders, markers, chart symbol).
window.executor = { state };

resetChart(state.chartSymbol);
// The first request asks for a token if the service needs one; the socket then uses it.
loadOrders().finally(() => connect(false));
