// The agent console: plain DOM over the SDK. Sign-in, status, the waiting queue, my conversations
// (unread counts from read cursors, newest activity first) and the conversation view (order card
// first, live thread, presence, typing, receipts, transfer, resolve, CSAT, history paging).
import { connect, mergeEvents, ParleyError } from '/sdk/parley.js';
import { el, formatTime, orderCard, keepPinned } from '/sdk/parley-ui.js';

const $ = (id) => document.getElementById(id);
const RENDER_WINDOW = 150;   // events in the DOM at first; "Load earlier" adds more
const HISTORY_PAGE = 100;
const TOKEN_KEY = 'parley.console.token';

let client = null;
let me = null;
let selected = null;
let renderWindow = RENDER_WINDOW;
/** id → { events: [...] ascending by seq, loading: bool } */
const threads = new Map();
/** Of the selected conversation: seq → rendered node, and the last seq rendered. */
let rendered = new Map();
let lastRendered = 0;
let firstRendered = 0;
let frame = 0;
const dirty = { sidebar: false, thread: false, header: false };

// ---- sign-in

async function main() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('token')) {
    sessionStorage.setItem(TOKEN_KEY, hash.get('token'));
    history.replaceState(null, '', location.pathname + location.search);  // out of the address bar
  }
  const config = await fetch('/console/config.json').then((r) => r.json()).catch(() => ({ tokenUrl: null }));
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('signin-token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('signin-token').value = '';
    start(async () => sessionStorage.getItem(TOKEN_KEY));
  });
  $('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    client?.close();
    client = null;
    showSignIn('Signed out.');
  });
  if (config.tokenUrl) {
    start(async () => {
      const r = await fetch(config.tokenUrl, { credentials: 'include' });
      if (!r.ok) throw new Error(`sign-in service answered ${r.status}`);
      return (await r.json()).token;
    });
  } else if (sessionStorage.getItem(TOKEN_KEY)) {
    start(async () => sessionStorage.getItem(TOKEN_KEY));
  } else {
    showSignIn('');
  }
}

function showSignIn(why) {
  $('app').dataset.state = 'signin';
  $('signin').hidden = false;
  $('workspace').hidden = true;
  $('sign-out').hidden = true;
  $('status').disabled = true;
  $('signin-why').textContent = why;
  setConn('Signed out', 'off');
  $('signin-token').focus();
}

// ---- the client

function start(token) {
  client?.close();
  threads.clear();
  selected = null;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  client = connect({ url: `${scheme}://${location.host}/v1/ws`, token });
  window.parleyConsole = { client, threads };
  client.on('state', ({ state }) => {
    if (state === 'open') setConn('Online', 'ok');
    else if (state === 'reconnecting') setConn('Reconnecting…', 'warn');
    else if (state === 'connecting') setConn('Connecting…', 'warn');
  });
  client.on('unauthorized', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn('The server refused this token (wrong or expired). Paste a new one.');
  });
  client.on('welcome', (w) => {
    me = w.user;
    if (me.role !== 'agent') { client.close(); sessionStorage.removeItem(TOKEN_KEY); showSignIn('That is a customer token: the console needs an agent token.'); return; }
    $('app').dataset.state = 'ready';
    $('signin').hidden = true;
    $('workspace').hidden = false;
    $('sign-out').hidden = false;
    $('me-name').textContent = me.name;
    $('status').disabled = false;
    const wanted = localStorage.getItem(statusKey()) || 'available';
    if (client.agentStatus !== wanted) setStatus(wanted, false);
    $('status').value = wanted;
    for (const v of w.conversations) loadRecent(v.id);
    touch('sidebar', 'header', 'thread');
  });
  client.on('reset', () => { threads.clear(); selected = null; showEmpty(); touch('sidebar'); });
  client.on('event', (e) => {
    addEvents(e.conversation, [e]);
    if (e.conversation === selected) touch('thread');
    touch('sidebar');
  });
  client.on('conversation', (c) => { touch('sidebar'); if (c.id === selected) touch('header'); });
  client.on('queue', () => touch('sidebar'));
  client.on('typing', (t) => { if (t.conversation === selected) touch('header'); });
  client.on('read', (r) => { if (r.conversation === selected) touch('header'); });
  client.on('presence', () => touch('header'));
  client.on('outbox', () => { if (selected) touch('thread'); });
  client.on('send_failed', ({ error }) => notice(`Not sent: ${error.message}`));
  client.on('error', (e) => notice(e.message));
}

const statusKey = () => `parley.console.status:${me?.id}`;

async function setStatus(status, remember = true) {
  if (remember) localStorage.setItem(statusKey(), status);  // other tabs follow (storage event)
  try { await client.setStatus(status); } catch (e) { if (e.code !== 'disconnected') notice(e.message); }
}

window.addEventListener('storage', (e) => {
  if (client && me && e.key === statusKey() && e.newValue && e.newValue !== client.agentStatus) {
    $('status').value = e.newValue;
    setStatus(e.newValue, false);
  }
});

function setConn(text, cls) {
  const c = $('conn');
  c.textContent = text;
  c.className = `conn ${cls}`;
}

function notice(text) {
  const n = $('notice');
  n.textContent = text;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.textContent = ''; }, 6000);
}

// ---- thread data

function thread(id) {
  if (!threads.has(id)) threads.set(id, { events: [], loading: false });
  return threads.get(id);
}

function addEvents(id, events) {
  const t = thread(id);
  t.events = mergeEvents(t.events, events);
}

/** The newest page of a conversation this page has not seen yet (after a load or a reset). */
async function loadRecent(id) {
  const t = thread(id);
  if (t.events.length || t.loading) return;
  t.loading = true;
  try { addEvents(id, await client.history(id, { limit: 50 })); } catch { /* retried at the next welcome */ }
  t.loading = false;
  touch('sidebar');
  if (id === selected) touch('thread');
}

async function loadEarlier() {
  const t = thread(selected);
  const inMemory = t.events.length - renderWindow;
  if (inMemory < HISTORY_PAGE && t.events.length && t.events[0].seq > 1) {
    const id = selected;
    try { addEvents(id, await client.history(id, { before: t.events[0].seq, limit: HISTORY_PAGE })); } catch (e) { notice(e.message); return; }
    if (id !== selected) return;
  }
  renderWindow += HISTORY_PAGE;
  renderThread(true);
}

// ---- rendering (coalesced to one pass per animation frame)

function touch(...parts) {
  for (const p of parts) dirty[p] = true;
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  if (dirty.sidebar) { dirty.sidebar = false; renderSidebar(); }
  if (dirty.header) { dirty.header = false; renderHeader(); }
  if (dirty.thread) { dirty.thread = false; renderThread(false); }
}

const name = (p) => p?.name || p?.id || 'someone';
const mine = (c) => c.agent?.id === me?.id;

function unread(c) {
  const t = threads.get(c.id);
  if (!t) return Math.max(0, c.lastSeq - c.readSeq) ? 1 : 0;
  let n = 0;
  for (let i = t.events.length - 1; i >= 0 && t.events[i].seq > c.readSeq; i--) {
    const e = t.events[i];
    if (e.type === 'message' && e.from?.id !== me.id) n++;
  }
  return n;
}

function lastMessage(id) {
  const evs = threads.get(id)?.events || [];
  for (let i = evs.length - 1; i >= 0; i--) if (evs[i].type === 'message') return evs[i];
  return null;
}

function renderSidebar() {
  if (!client || !me) return;
  const q = client.queue;
  $('queue-count').textContent = q.length;
  $('queue').replaceChildren(...q.map((w) => el('li', { class: 'item', dataset: { conversation: w.conversation } },
    el('span', { class: 'who' }, name(w.customer)),
    el('span', { class: 'meta' }, `waiting since ${formatTime(w.since)}`),
    el('button', { type: 'button', class: 'claim', onclick: () => claim(w.conversation), 'aria-label': `Claim conversation with ${name(w.customer)}` }, 'Claim'))));

  const convs = [...client.conversations.values()].filter(mine)
    .sort((a, b) => (b.lastTs || 0) - (a.lastTs || 0) || (b.activity || 0) - (a.activity || 0));
  $('mine-count').textContent = convs.filter((c) => c.status !== 'resolved').length;
  $('mine').replaceChildren(...convs.map((c) => {
    const n = unread(c);
    const last = lastMessage(c.id);
    return el('li', { class: `item${c.id === selected ? ' selected' : ''}${c.status === 'resolved' ? ' resolved' : ''}`, dataset: { conversation: c.id } },
      el('button', { type: 'button', class: 'open', onclick: () => select(c.id), 'aria-current': c.id === selected ? 'true' : null },
        el('span', { class: 'who' }, name(c.customer)),
        n ? el('span', { class: 'unread', 'aria-label': `${n} unread` }, String(n)) : null,
        c.status === 'resolved' ? el('span', { class: 'badge' }, 'resolved') : null,
        el('span', { class: 'preview' }, last ? last.text : (c.order ? `Order ${c.order.id}` : 'New conversation')),
        el('span', { class: 'meta' }, formatTime(c.lastTs))));
  }));
}

async function claim(id) {
  try { await client.claim(id); select(id); } catch (e) { notice(e instanceof ParleyError ? `Cannot claim: ${e.message}` : String(e)); }
}

function select(id) {
  selected = id;
  renderWindow = RENDER_WINDOW;
  loadRecent(id);
  renderHeader();   // first: the pane must be shown before the thread can scroll to its end
  renderThread(true);
  renderSidebar();
  markRead();
  $('text').focus();
}

function showEmpty() {
  $('empty').hidden = false;
  $('conversation').hidden = true;
}

function renderHeader() {
  const c = selected && client?.conversations.get(selected);
  if (!c) { showEmpty(); return; }
  $('empty').hidden = true;
  $('conversation').hidden = false;
  $('customer-name').textContent = name(c.customer);
  // Presence is only known once the server has said it (it tells changes, not the state at
  // assignment); a customer who types or writes is online.
  const typingNow = c.typing?.[c.customer?.id];
  const presence = client.presence[c.customer?.id] || (typingNow ? 'online' : '');
  $('customer-presence').textContent = presence;
  $('customer-presence').className = `presence ${presence}`;
  $('customer-presence').hidden = !presence;
  $('conv-status').textContent = mine(c) ? c.status : 'transferred';
  const active = c.status !== 'resolved' && mine(c);
  for (const b of ['resolve', 'to-queue']) $(b).disabled = !active;
  $('transfer-form').querySelector('button').disabled = !active;
  $('text').disabled = !active;
  $('composer').querySelector('button').disabled = !active;
  const orderId = c.order?.id ?? null;
  if ($('order').dataset.order !== String(orderId) || $('order').dataset.conv !== c.id) {
    $('order').replaceChildren(orderCard(c.order, { heading: 'Order' }));
    $('order').dataset.order = String(orderId);
    $('order').dataset.conv = c.id;
  }
  const typing = Object.entries(c.typing || {}).filter(([u, on]) => on && u !== me.id);
  $('typing').textContent = typing.length ? `${name(c.customer)} is typing…` : '';
  updateReceipts(c);
}

function eventNode(e) {
  const base = { dataset: { seq: e.seq } };
  switch (e.type) {
    case 'message': {
      const who = e.from?.id === me.id ? 'mine' : (e.from?.role === 'customer' ? 'theirs' : 'colleague');
      return el('li', { ...base, class: `msg ${who}`, dataset: { seq: e.seq, clientMsgId: e.clientMsgId } },
        el('span', { class: 'author' }, name(e.from)),
        el('p', { class: 'text' }, e.text),
        el('span', { class: 'meta' }, el('time', {}, formatTime(e.ts)), who === 'mine' ? el('span', { class: 'receipt' }, 'Sent') : null));
    }
    case 'conversation.created': return el('li', { ...base, class: 'system' }, `${name(e.customer)} opened the conversation`, e.order ? ` about order ${e.order.id}` : '');
    case 'order.attached': return el('li', { ...base, class: 'system' }, `Order ${e.order?.id ?? ''} attached`, orderCard(e.order, { heading: 'Order' }));
    case 'conversation.assigned': return el('li', { ...base, class: 'system' }, `Assigned to ${name(e.agent)}`);
    case 'conversation.transferred': return el('li', { ...base, class: 'system' }, `Transferred from ${name(e.from)} to ${e.to ? name(e.to) : 'the queue'}`);
    case 'conversation.resolved': return el('li', { ...base, class: 'system' }, `Resolved by ${name(e.by)}`);
    case 'csat': return el('li', { ...base, class: 'csat' }, el('strong', {}, `Rated ${e.score}/5`), e.comment ? ` — “${e.comment}”` : '');
    default: return el('li', { ...base, class: 'system' }, e.type);
  }
}

function renderThread(full) {
  if (!selected || !client) return;
  const t = thread(selected);
  const box = $('thread');
  const list = $('events');
  const shown = t.events.slice(-renderWindow);
  // Older events that belong in the window (a history page landed under what is drawn): redraw.
  if (!full && shown.length && (rendered.size === 0 || shown[0].seq < firstRendered)) full = true;
  keepPinned(box, () => {
    if (full) {
      const fromBottom = box.scrollHeight - box.scrollTop;
      rendered = new Map();
      list.replaceChildren(...shown.map((e) => { const n = eventNode(e); rendered.set(e.seq, n); return n; }));
      firstRendered = shown.length ? shown[0].seq : 0;
      lastRendered = shown.length ? shown[shown.length - 1].seq : 0;
      if (renderWindow > RENDER_WINDOW) box.scrollTop = box.scrollHeight - fromBottom;  // stay where the reader was
    } else {
      const frag = document.createDocumentFragment();
      let i = t.events.length;
      while (i > 0 && t.events[i - 1].seq > lastRendered) i--;
      for (const e of t.events.slice(i)) { const n = eventNode(e); rendered.set(e.seq, n); frag.append(n); lastRendered = e.seq; }
      list.querySelectorAll('.pending').forEach((n) => n.remove());
      list.append(frag);
    }
    $('earlier').hidden = !(t.events.length > rendered.size || (t.events[0]?.seq ?? 1) > 1);
    renderPending(list, t);
  });
  const c = client.conversations.get(selected);
  if (c) updateReceipts(c);
  markRead();
}

function renderPending(list, t) {
  list.querySelectorAll('.pending').forEach((n) => n.remove());
  const stored = new Set(t.events.filter((e) => e.type === 'message').map((e) => e.clientMsgId));
  for (const m of client.outbox) {
    if (m.conversation !== selected || stored.has(m.clientMsgId)) continue;
    list.append(el('li', { class: 'msg mine pending', dataset: { clientMsgId: m.clientMsgId } },
      el('span', { class: 'author' }, name(me)), el('p', { class: 'text' }, m.text),
      el('span', { class: 'meta' }, el('span', { class: 'receipt' }, client.connected ? 'Sending…' : 'Waiting for connection…'))));
  }
}

function updateReceipts(c) {
  const seen = c.reads?.[c.customer?.id] || 0;
  for (const [seq, node] of rendered) {
    if (!node.classList.contains('mine')) continue;
    const r = node.querySelector('.receipt');
    if (r) r.textContent = seq <= seen ? 'Seen' : 'Sent';
    node.classList.toggle('seen', seq <= seen);
  }
}

function markRead() {
  if (!selected || document.visibilityState !== 'visible') return;
  const c = client?.conversations.get(selected);
  const t = threads.get(selected);
  if (!c || !mine(c) || !t?.events.length) return;
  const last = t.events[t.events.length - 1].seq;
  if (last > c.readSeq) client.read(selected, last).catch(() => {});
}

// ---- actions

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value;
  if (!selected || !text.trim()) return;
  $('text').value = '';
  client.send(selected, text).catch((err) => notice(`Not sent: ${err.message}`));
  touch('thread');
});
$('text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('composer').requestSubmit(); }
});
$('text').addEventListener('input', () => { if (selected) client.typing(selected, $('text').value.length > 0); });
$('status').addEventListener('change', () => setStatus($('status').value));
$('resolve').addEventListener('click', () => client.resolve(selected).catch((e) => notice(`Cannot resolve: ${e.message}`)));
$('to-queue').addEventListener('click', () => client.transfer(selected, null).catch((e) => notice(`Cannot transfer: ${e.message}`)));
$('transfer-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const to = $('transfer-to').value.trim();
  if (!to) return;
  client.transfer(selected, to).then(() => { $('transfer-to').value = ''; notice(`Transferred to ${to}`); })
    .catch((err) => notice(`Cannot transfer to ${to}: ${err.message}`));
});
$('earlier').addEventListener('click', loadEarlier);
$('thread').addEventListener('scroll', () => { if ($('thread').scrollTop === 0 && !$('earlier').hidden) loadEarlier(); });
document.addEventListener('visibilitychange', markRead);
window.addEventListener('focus', markRead);

main();
