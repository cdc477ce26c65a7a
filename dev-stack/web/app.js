// The demo SPA: every API call is same-origin, carries the session cookie (automatically) and `X-CSRF: 1`.
// It never sees a token: /bff/user answers claims only.
"use strict";

const api = (path, options = {}) =>
  fetch(path, {
    ...options,
    credentials: "same-origin",
    headers: { "X-CSRF": "1", ...(options.headers || {}) },
  });

const $ = (id) => document.getElementById(id);
const money = (m) => `${(m.amount_cents / 100).toFixed(2)} ${m.currency}`;

function showError(message) {
  $("error").textContent = message;
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

function renderCart(cart) {
  const units = cart.items.reduce((n, line) => n + line.quantity, 0);
  $("cart").textContent = units === 0 ? "empty" : `${units} item(s), total ${money(cart.total)}`;
  $("cart").dataset.units = String(units);
}

async function addToCart(productId) {
  const response = await api("/api/cart/items", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
    body: JSON.stringify({ product_id: productId, quantity: 1 }),
  });
  if (response.status === 401) return start();
  if (!response.ok) return showError(`could not add to cart (${response.status})`);
  renderCart(await response.json());
}

async function loadHome() {
  const response = await api("/api/home");
  if (response.status === 401) return start();
  if (!response.ok) return showError(`home screen unavailable (${response.status})`);
  const home = await response.json();
  $("greeting").textContent = `Welcome back, ${home.profile.first_name}`;
  const orders = $("orders");
  orders.replaceChildren(
    ...home.recent_orders.map((o) => item(`${o.id}: ${o.status}, ${money(o.total)}`)),
  );
  const recommendations = $("recommendations");
  recommendations.replaceChildren(
    ...(home.recommendations || []).map((r) => {
      const li = item(`${r.name} (${money(r.price)}) `);
      const button = document.createElement("button");
      button.textContent = "Add to cart";
      button.className = "add-to-cart";
      button.addEventListener("click", () => addToCart(r.id));
      li.append(button);
      return li;
    }),
  );
  const cart = await api("/api/cart");
  if (cart.ok) renderCart(await cart.json());
  $("home").hidden = false;
  document.body.dataset.state = "home";
}

async function start() {
  $("home").hidden = true;
  const response = await api("/bff/user");
  if (response.status === 401) {
    $("login").hidden = false;
    $("logout-form").hidden = true;
    $("anonymous").hidden = false;
    document.body.dataset.state = "anonymous";
    return;
  }
  if (!response.ok) return showError(`session check failed (${response.status})`);
  const user = await response.json();
  $("login").hidden = true;
  $("anonymous").hidden = true;
  $("logout-form").hidden = false;
  $("user-name").textContent = user.claims.name || user.claims.sub;
  await loadHome();
}

start().catch((e) => showError(String(e)));
