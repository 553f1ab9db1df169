// Display formatting for the page: pure functions of decimal strings, no state. Only what
// people read is rounded; the API's numbers stay exact. Loaded before app.js.
"use strict";

// Exact decimal rounding of a decimal string to `places` digits (half up), for display only.
function roundText(text, places) {
  if (text === null || text === undefined) return null;
  let value = String(text);
  const negative = value.startsWith("-");
  if (negative) value = value.slice(1);
  let [whole, fraction = ""] = value.split(".");
  if (fraction.length > places) {
    const up = fraction.charCodeAt(places) >= 53;  // next digit >= "5"
    let digits = (whole + fraction.slice(0, places)).split("").map(Number);
    if (up) {
      let i = digits.length - 1;
      while (i >= 0) { if (digits[i] === 9) { digits[i] = 0; i -= 1; } else { digits[i] += 1; break; } }
      if (i < 0) digits = [1, ...digits];
    }
    const cut = digits.length - places;
    whole = digits.slice(0, cut).join("") || "0";
    fraction = digits.slice(cut).join("");
  } else {
    fraction = fraction.padEnd(places, "0");
  }
  const result = places > 0 ? `${whole}.${fraction}` : whole;
  return negative && /[1-9]/.test(result) ? `-${result}` : result;
}

// Digits after the point of a tick or step ("0.01000000" -> 2, "1" -> 0).
function placesOf(size) {
  if (!size) return null;
  const fraction = String(size).split(".")[1] || "";
  return fraction.replace(/0+$/, "").length;
}

function trimZeros(text) {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

// Order ids begin with a timestamp: their end tells orders apart.
function shortId(orderId) { return `…${orderId.slice(-8)}`; }

function ago(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}
