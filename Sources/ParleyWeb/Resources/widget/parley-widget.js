// The customer chat widget: one tag puts a "Help" button and a chat panel in any page.
//
//   <script type="module" src="https://chat.example.com/widget/parley-widget.js"
//           data-token-url="/api/parley-token"></script>
//
// `data-token-url`: the app's own backend, POSTed to (with the page's cookies) for `{"token"}`.
// Or, instead, call `mount({ token: async () => … })` from this module. The server is the one the
// script came from (or `data-server`). Everything lives in a shadow root: the page's CSS and the
// widget's do not touch.
import { connect, mergeEvents } from '../sdk/parley.js';
import { el, formatTime, orderCard, keepPinned } from '../sdk/parley-ui.js';

const here = new URL(import.meta.url);
const OPEN_KEY = 'parley.widget.open';

function scriptTag() {
  for (const s of document.querySelectorAll('script[src]')) {
    try { if (new URL(s.src, location.href).href === here.href) return s; } catch { /* not a URL */ }
  }
  return null;
}

export function mount({ token, server = here.origin, container = document.body } = {}) {
  if (typeof token !== 'function') throw new TypeError('parley widget: token must be a function returning a token');
  return new Widget({ token, server, container });
}

class Widget {
  constructor({ token, server, container }) {
    this.token = token;
    this.server = new URL(server);
    this.client = null;
    this.conversation = null;   // id of the one shown
    this.events = [];
    this.host = el('div', { class: 'parley-widget-host' });
    this.root = this.host.attachShadow({ mode: 'open' });
    this.root.append(el('link', { rel: 'stylesheet', href: new URL('widget.css', here).href }));
    this.build();
    container.append(this.host);
    window.parleyWidget = this;
    if (sessionStorage.getItem(OPEN_KEY) === '1') this.open();
  }

  q(sel) { return this.root.querySelector(sel); }

  build() {
    this.button = el('button', { type: 'button', class: 'launcher', 'aria-expanded': 'false', 'aria-controls': 'parley-panel', onclick: () => this.toggle() },
      el('span', { 'aria-hidden': 'true' }, '?'), ' Help');
    this.panel = el('section', { id: 'parley-panel', class: 'panel', role: 'dialog', 'aria-label': 'Chat with support', hidden: true },
      el('header', { class: 'head' },
        el('div', {}, el('h2', {}, 'Support'), el('p', { class: 'who', 'aria-live': 'polite' }, 'Connecting…')),
        el('button', { type: 'button', class: 'close', 'aria-label': 'Close chat', onclick: () => this.toggle(false) }, '×')),
      el('p', { class: 'banner', role: 'status', hidden: true }, 'Reconnecting…'),
      el('div', { class: 'order-slot' }),
      el('div', { class: 'thread', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: '0' },
        el('button', { type: 'button', class: 'earlier', hidden: true, onclick: () => this.loadEarlier() }, 'Earlier messages'),
        el('ol', { class: 'events' })),
      el('p', { class: 'typing', 'aria-live': 'polite' }),
      el('section', { class: 'csat', hidden: true, 'aria-label': 'Rate this conversation' },
        el('p', {}, 'How did we do?'),
        el('div', { class: 'stars', role: 'group', 'aria-label': 'Score from 1 to 5' },
          [1, 2, 3, 4, 5].map((n) => el('button', { type: 'button', class: 'star', 'aria-label': `${n} of 5`, 'aria-pressed': 'false', dataset: { score: n }, onclick: () => this.pickScore(n) }, '★'))),
        el('label', { for: 'csat-comment', class: 'visually-hidden' }, 'Comment'),
        el('textarea', { id: 'csat-comment', rows: '2', placeholder: 'Anything to add? (optional)', maxlength: '2000' }),
        el('button', { type: 'button', class: 'primary send-csat', disabled: true, onclick: () => this.sendCsat() }, 'Send rating')),
      el('div', { class: 'after', hidden: true },
        el('p', { class: 'thanks' }),
        el('button', { type: 'button', class: 'primary', onclick: () => this.startNew() }, 'Start a new conversation')),
      el('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); this.sendText(); } },
        el('label', { for: 'parley-text', class: 'visually-hidden' }, 'Message'),
        el('textarea', { id: 'parley-text', rows: '1', placeholder: 'Type a message…', maxlength: '16384', disabled: true,
          onkeydown: (e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.sendText(); } },
          oninput: () => { if (this.conversation) this.client.typing(this.conversation, this.q('#parley-text').value.length > 0); } }),
        el('button', { type: 'submit', class: 'primary', disabled: true }, 'Send')));
    this.root.append(this.button, this.panel);
  }

  toggle(show = this.panel.hidden) {
    if (show) this.open(); else {
      this.panel.hidden = true;
      this.button.setAttribute('aria-expanded', 'false');
      sessionStorage.removeItem(OPEN_KEY);
      this.button.focus();
    }
  }

  async open() {
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    sessionStorage.setItem(OPEN_KEY, '1');
    this.q('#parley-text').focus();
    if (!this.client) this.start();
  }

  start() {
    const ws = new URL('/v1/ws', this.server);
    ws.protocol = this.server.protocol === 'https:' ? 'wss:' : 'ws:';
    const c = connect({ url: ws.href, token: this.token });
    this.client = c;
    c.on('state', ({ state }) => {
      const down = state === 'reconnecting' || state === 'connecting';
      this.q('.banner').hidden = !(state === 'reconnecting');
      this.panel.dataset.state = state;
      if (state === 'unauthorized') this.setWho('Chat is unavailable right now.');
      else if (down && !this.conversation) this.setWho('Connecting…');
      this.renderPending();
    });
    c.on('welcome', (w) => this.welcomed(w));
    c.on('reset', () => { this.conversation = null; this.events = []; this.q('.events').replaceChildren(); });
    c.on('event', (e) => {
      if (e.conversation !== this.conversation) return;
      this.addEvents([e]);
      this.render();
    });
    c.on('conversation', (conv) => { if (conv.id === this.conversation) this.renderHead(); });
    c.on('typing', (t) => { if (t.conversation === this.conversation) this.renderHead(); });
    c.on('read', (r) => { if (r.conversation === this.conversation) this.renderReceipts(); });
    c.on('presence', () => this.renderHead());
    c.on('outbox', () => this.renderPending());
    c.on('send_failed', ({ error }) => this.setWho(`Not sent: ${error.message}`));
  }

  async welcomed(w) {
    const current = w.conversations.find((v) => v.status !== 'resolved') || (this.conversation && w.conversations.find((v) => v.id === this.conversation));
    if (current) { await this.show(current.id); return; }
    if (this.conversation) return;  // resolved and shown (CSAT pending): keep it
    try {
      const v = await this.client.open();
      await this.show(v.id);
    } catch (e) { this.setWho(`Could not start the chat: ${e.message}`); }
  }

  async show(id) {
    const fresh = id !== this.conversation;
    this.conversation = id;
    if (fresh) { this.events = []; this.q('.events').replaceChildren(); this.rendered = 0; }
    try { this.addEvents(await this.client.history(id, { limit: 50 })); } catch { /* the live events still come */ }
    this.renderHead();
    this.render();
  }

  addEvents(evs) { this.events = mergeEvents(this.events, evs); }

  async loadEarlier() {
    if (!this.events.length) return;
    try { this.addEvents(await this.client.history(this.conversation, { before: this.events[0].seq, limit: 50 })); } catch { return; }
    this.rendered = 0;
    this.render();
  }

  conv() { return this.conversation ? this.client.conversations.get(this.conversation) : null; }

  setWho(text) { this.q('.who').textContent = text; }

  renderHead() {
    const c = this.conv();
    if (!c) return;
    if (c.status === 'assigned' && c.agent) {
      const p = this.client.presence[c.agent.id];
      this.setWho(`${c.agent.name} is helping you${p === 'away' || p === 'offline' ? ` (${p})` : ''}`);
    } else if (c.status === 'queued') {
      this.setWho('Waiting for an agent… you are in the queue, we will be with you shortly.');
    } else if (c.status === 'resolved') {
      this.setWho('This conversation is resolved.');
    }
    const slot = this.q('.order-slot');
    if (slot.dataset.order !== String(c.order?.id ?? null)) {
      slot.replaceChildren(orderCard(c.order, { heading: 'Your order' }));
      slot.dataset.order = String(c.order?.id ?? null);
    }
    const agentTyping = c.agent && c.typing?.[c.agent.id];
    this.q('.typing').textContent = agentTyping ? `${c.agent.name} is typing…` : '';
    const open = c.status !== 'resolved';
    this.q('#parley-text').disabled = !open;
    this.q('.composer button').disabled = !open;
    this.q('.composer').hidden = !open;
    const rated = c.csat || this.events.some((e) => e.type === 'csat');
    this.q('.csat').hidden = open || !!rated;
    this.q('.after').hidden = open || !rated;
    if (rated) this.q('.thanks').textContent = 'Thanks for your feedback!';
  }

  eventNode(e) {
    const me = this.client.user?.id;
    switch (e.type) {
      case 'message': {
        const mine = e.from?.id === me;
        return el('li', { class: `msg ${mine ? 'mine' : 'theirs'}`, dataset: { seq: e.seq, clientMsgId: e.clientMsgId } },
          mine ? null : el('span', { class: 'author' }, e.from?.name || 'Support'),
          el('p', { class: 'text' }, e.text),
          el('span', { class: 'meta' }, el('time', {}, formatTime(e.ts)), mine ? el('span', { class: 'receipt' }, 'Sent') : null));
      }
      case 'conversation.assigned': return el('li', { class: 'system', dataset: { seq: e.seq } }, `${e.agent?.name} joined`);
      case 'conversation.transferred': return el('li', { class: 'system', dataset: { seq: e.seq } }, e.to ? `${e.to.name} took over` : 'Finding another agent for you…');
      case 'conversation.resolved': return el('li', { class: 'system', dataset: { seq: e.seq } }, 'Conversation resolved');
      case 'order.attached': return el('li', { class: 'system', dataset: { seq: e.seq } }, `About order ${e.order?.id ?? ''}`);
      case 'csat': return el('li', { class: 'system', dataset: { seq: e.seq } }, `You rated ${e.score}/5`);
      default: return null;  // conversation.created: the order card says it
    }
  }

  render() {
    const box = this.q('.thread');
    const list = this.q('.events');
    keepPinned(box, () => {
      if (!this.rendered) {
        list.replaceChildren(...this.events.map((e) => this.eventNode(e)).filter(Boolean));
      } else {
        for (const e of this.events) if (e.seq > this.rendered) { const n = this.eventNode(e); if (n) list.append(n); }
      }
      this.rendered = this.events.length ? this.events[this.events.length - 1].seq : 0;
      this.q('.earlier').hidden = !(this.events.length && this.events[0].seq > 1);
      this.renderPending();
    });
    this.renderReceipts();
    this.renderHead();
    this.markRead();
  }

  renderPending() {
    const list = this.q('.events');
    if (!this.client) return;
    list.querySelectorAll('.pending').forEach((n) => n.remove());
    const stored = new Set(this.events.map((e) => e.clientMsgId).filter(Boolean));
    for (const m of this.client.outbox) {
      if (m.conversation !== this.conversation || stored.has(m.clientMsgId)) continue;
      list.append(el('li', { class: 'msg mine pending', dataset: { clientMsgId: m.clientMsgId } },
        el('p', { class: 'text' }, m.text),
        el('span', { class: 'meta' }, el('span', { class: 'receipt' }, this.client.connected ? 'Sending…' : 'Will send when connected'))));
    }
  }

  renderReceipts() {
    const c = this.conv();
    if (!c) return;
    const seen = c.agent ? (c.reads?.[c.agent.id] || 0) : 0;
    for (const n of this.q('.events').querySelectorAll('.msg.mine:not(.pending)')) {
      const ok = Number(n.dataset.seq) <= seen;
      n.classList.toggle('seen', ok);
      n.querySelector('.receipt').textContent = ok ? 'Seen' : 'Sent';
    }
  }

  markRead() {
    const c = this.conv();
    if (!c || this.panel.hidden || document.visibilityState !== 'visible' || !this.events.length) return;
    const last = this.events[this.events.length - 1].seq;
    if (last > c.readSeq) this.client.read(c.id, last).catch(() => {});
  }

  sendText() {
    const box = this.q('#parley-text');
    const text = box.value;
    if (!text.trim() || !this.conversation) return;
    box.value = '';
    this.client.send(this.conversation, text).catch((e) => this.setWho(`Not sent: ${e.message}`));
    this.renderPending();
    keepPinned(this.q('.thread'), () => {});
    this.q('.thread').scrollTop = this.q('.thread').scrollHeight;
  }

  pickScore(n) {
    this.score = n;
    for (const b of this.q('.stars').children) b.setAttribute('aria-pressed', String(Number(b.dataset.score) <= n));
    this.q('.send-csat').disabled = false;
  }

  async sendCsat() {
    if (!this.score) return;
    try {
      await this.client.csat(this.conversation, this.score, this.q('#csat-comment').value.trim() || undefined);
    } catch (e) { this.setWho(`Rating not sent: ${e.message}`); }
    this.renderHead();
  }

  async startNew() {
    try {
      const v = await this.client.open();
      this.score = 0;
      await this.show(v.id);
    } catch (e) { this.setWho(`Could not start the chat: ${e.message}`); }
  }
}

// Auto-mount from the script tag's data-token-url.
const tag = scriptTag();
if (tag?.dataset.tokenUrl) {
  const url = new URL(tag.dataset.tokenUrl, location.href);
  const init = () => mount({
    server: tag.dataset.server || here.origin,
    token: async () => {
      const r = await fetch(url, { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: '{}' });
      if (!r.ok) throw new Error(`token service answered ${r.status}`);
      return (await r.json()).token;
    },
  });
  if (document.body) init(); else document.addEventListener('DOMContentLoaded', init);
}
