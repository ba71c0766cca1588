// DOM helpers shared by the agent console and the customer widget: no framework, no innerHTML
// with data (every text goes in as a text node).

/** el('div', {class: 'x', 'aria-label': 'y', onclick: fn}, child, 'text', …) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

export function formatTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function formatMoney(amount, currency) {
  const n = Number(amount);
  if (!Number.isFinite(n)) return `${amount} ${currency || ''}`.trim();
  try { return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(n); } catch { return `${amount} ${currency}`; }
}

/** The order a conversation is about, as a card: the first thing agent and customer see. */
export function orderCard(order, { heading = 'Your order' } = {}) {
  if (!order) return el('section', { class: 'order-card order-none', 'aria-label': 'Order' }, el('p', {}, 'No order attached'));
  const placed = order.placedAt ? new Date(order.placedAt) : null;
  const items = Array.isArray(order.items) ? order.items : [];
  return el('section', { class: 'order-card', 'aria-label': `Order ${order.id}`, dataset: { order: order.id } },
    el('header', {},
      el('span', { class: 'order-heading' }, heading, ' ', el('strong', { class: 'order-id' }, order.id)),
      el('span', { class: `order-status status-${String(order.status).replace(/[^a-z0-9_-]/gi, '')}` }, order.status)),
    el('ul', { class: 'order-items' }, items.map((it) => el('li', {},
      el('span', { class: 'qty' }, `${it.quantity}×`), ' ', el('span', { class: 'item-name' }, it.name),
      it.price !== undefined ? el('span', { class: 'price' }, formatMoney(it.price, order.currency)) : null))),
    el('footer', {},
      placed && !Number.isNaN(placed.getTime()) ? el('time', { datetime: order.placedAt }, placed.toLocaleDateString()) : null,
      el('span', { class: 'order-total' }, 'Total ', formatMoney(order.total, order.currency))));
}

/** Keeps a scroll container pinned to the bottom if it was there before `change` ran. */
export function keepPinned(container, change) {
  const pinned = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
  change();
  if (pinned) container.scrollTop = container.scrollHeight;
}
