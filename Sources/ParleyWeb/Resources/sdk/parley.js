// parley.js — the JavaScript SDK for Parley's chat protocol v1 (Protocol/SPEC.md §4).
// One dependency-free ES module for modern browsers and Node >= 20 (its WebSocket: built in from
// Node 22, `--experimental-websocket` on 20, or pass `WebSocket` in the options).
//
// What it promises, as the server does: every sequenced event of a conversation reaches the app
// exactly once and in `seq` order, across reconnects and page reloads (positions are kept in a
// store); a message handed to `send` is kept in a persisted outbox until the server acknowledges
// it, and is resent with the same `clientMsgId` after a reconnect or a reload, so it is stored
// exactly once; a new `epoch` (the server's history was restored or cut) resets the client
// instead of leaving a silent gap.

export const PROTOCOL = 'parley.v1';
export const VERSION = '1.0.0';

/** Close codes the server sends (SPEC §2.5). */
export const CloseCode = Object.freeze({
  normal: 1000, goingAway: 1001, protocolError: 1002, unsupportedData: 1003, invalidPayload: 1007,
  policyViolation: 1008, messageTooBig: 1009, internalError: 1011, unauthorized: 4001,
});

/**
 * What to do after the server closed with a code (SPEC §2.5, the same table as the server's
 * `CloseCode.advice` and the Swift SDK): 'no' (we asked), 'soon' (1001: the server is going away;
 * reconnect within a second, to the next URL), 'newToken' (4001), 'afterBackoff' (anything else).
 */
export function reconnectAdvice(code) {
  switch (code) {
    case CloseCode.normal: return 'no';
    case CloseCode.goingAway: return 'soon';
    case CloseCode.unauthorized: return 'newToken';
    default: return 'afterBackoff';
  }
}

/** Error codes of `{"type":"error"}` (SPEC §4.1), and the SDK's own (`disconnected`, `closed`). */
export const ErrorCode = Object.freeze({
  invalidRequest: 'invalid_request', unauthorized: 'unauthorized', forbidden: 'forbidden',
  notFound: 'not_found', conflict: 'conflict', tooLarge: 'too_large', rateLimited: 'rate_limited',
  unavailable: 'unavailable', disconnected: 'disconnected', closed: 'closed',
});

/** Limits the server enforces, checked here first so a bad call fails at once. */
export const Limits = Object.freeze({
  maxTextBytes: 16 * 1024, maxCommentBytes: 2 * 1024, maxClientMsgIdBytes: 64,
  maxResume: 1000, historyDefault: 50, historyMax: 1000, typingTTLMs: 5000,
});

/** An error the protocol (or the connection) gave a request. `code` is one of ErrorCode. */
export class ParleyError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = 'ParleyError';
    this.code = code;
    this.ref = details.ref;
    this.request = details.request;
  }
  /** Whether the same request may succeed later (the server stored nothing). */
  get retryable() {
    return this.code === ErrorCode.unavailable || this.code === ErrorCode.rateLimited || this.code === ErrorCode.disconnected;
  }
}

// ---------------------------------------------------------------------------------------------
// Stores: where positions and the outbox live between page loads. A store has get/set/remove of
// strings; they may return promises.

export class MemoryStore {
  constructor() { this.map = new Map(); }
  get(key) { return this.map.has(key) ? this.map.get(key) : null; }
  set(key, value) { this.map.set(key, value); }
  remove(key) { this.map.delete(key); }
}

export class LocalStorageStore {
  constructor(storage = globalThis.localStorage) { this.storage = storage; }
  get(key) { try { return this.storage.getItem(key); } catch { return null; } }
  set(key, value) { try { this.storage.setItem(key, value); } catch { /* full or blocked: memory only */ } }
  remove(key) { try { this.storage.removeItem(key); } catch { /* ignore */ } }
}

export function defaultStore() {
  try {
    if (globalThis.localStorage) { globalThis.localStorage.getItem('parley:probe'); return new LocalStorageStore(); }
  } catch { /* storage blocked (private mode, sandbox) */ }
  return new MemoryStore();
}

// ---------------------------------------------------------------------------------------------
// Pure helpers: the conversation model (events in, state out), ids, backoff.

const encoder = new TextEncoder();
export const utf8Length = (s) => encoder.encode(s).length;

/** A random id for `clientMsgId`: 128 bits, hex (crypto.getRandomValues works without TLS too). */
export function randomId() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** The `sub` of a JWT, read (not verified) to pick the user's store key; null if unreadable. */
export function tokenSubject(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part + '='.repeat((4 - part.length % 4) % 4)),
      (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    const sub = JSON.parse(json).sub;
    return typeof sub === 'string' ? sub : null;
  } catch { return null; }
}

/** Jittered exponential backoff: attempt 0, 1, 2… → a delay in [base/2, base], base doubling to max. */
export function backoffDelay(attempt, { initialMs = 250, maxMs = 10000 } = {}, random = Math.random) {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + random() * base / 2);
}

/**
 * Merges events into a list sorted by `seq`, each seq once (history pages, replays, live).
 * Events that all come after the list (the live case) are appended to `list` itself.
 */
export function mergeEvents(list, events) {
  const last = list.length ? list[list.length - 1].seq : 0;
  if (events.every((e, i) => e.seq > (i === 0 ? last : events[i - 1].seq))) { list.push(...events); return list; }
  const bySeq = new Map(list.map((e) => [e.seq, e]));
  for (const e of events) if (!bySeq.has(e.seq)) bySeq.set(e.seq, e);
  return Array.from(bySeq.values()).sort((a, b) => a.seq - b.seq);
}

const SEQUENCED = new Set(['conversation.created', 'message', 'order.attached', 'conversation.assigned',
  'conversation.transferred', 'conversation.resolved', 'csat']);

/** A conversation as the client knows it: the welcome/opened view, then every event applied. */
export function conversationFrom(view) {
  return {
    id: view.id, status: view.status || 'queued', customer: view.customer || null, agent: view.agent || null,
    order: view.order === undefined ? null : view.order, lastSeq: view.lastSeq || 0, readSeq: view.readSeq || 0,
    lastTs: view.lastTs || 0, reads: {}, typing: {}, csat: null,
  };
}

/** Applies one sequenced event to a conversation (pure: returns the new state). */
export function applyEvent(c, e) {
  const n = { ...c, lastSeq: Math.max(c.lastSeq, e.seq), lastTs: Math.max(c.lastTs, e.ts || 0) };
  switch (e.type) {
    case 'conversation.created': n.customer = e.customer; n.order = e.order ?? null; break;
    case 'order.attached': n.order = e.order; break;
    case 'conversation.assigned': n.agent = e.agent; n.status = 'assigned'; break;
    case 'conversation.transferred': n.agent = e.to || null; n.status = e.to ? 'assigned' : 'queued'; break;
    case 'conversation.resolved': n.status = 'resolved'; break;
    case 'csat': n.csat = { score: e.score, comment: e.comment ?? null }; break;
    case 'message': if (e.from?.id) n.typing = { ...n.typing, [e.from.id]: false }; break;
    default: break;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// The client.

/**
 * Connects and keeps connecting. Options:
 *   url: 'ws://host:port/v1/ws' or a list (another is tried after 1001 or a failure);
 *   token: () => Promise<string> — asked at every connection (the app's backend mints it);
 *   store: a store (default localStorage in browsers, memory elsewhere);
 *   WebSocket: a constructor (default globalThis.WebSocket);
 *   backoff: { initialMs, maxMs }; connectTimeoutMs (default 15000).
 */
export function connect(options) {
  const client = new ParleyClient(options);
  client.start();
  return client;
}

export class ParleyClient {
  constructor(options = {}) {
    if (!options.url) throw new TypeError('parley: url is required');
    if (typeof options.token !== 'function') throw new TypeError('parley: token must be a function returning a token');
    this.urls = Array.isArray(options.url) ? options.url.slice() : [options.url];
    this.tokenProvider = options.token;
    this.store = options.store || defaultStore();
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocketImpl) throw new TypeError('parley: no WebSocket (Node 20: run with --experimental-websocket, or pass WebSocket)');
    this.backoff = { initialMs: 250, maxMs: 10000, ...(options.backoff || {}) };
    this.connectTimeoutMs = options.connectTimeoutMs ?? 15000;

    this.state = 'idle';
    this.user = null;
    this.session = null;
    this.epoch = null;
    /** id → conversation (see conversationFrom). */
    this.conversations = new Map();
    /** Agents: the waiting queue as last sent. */
    this.queue = [];
    /** userId → presence status, for the other participants of my conversations. */
    this.presence = {};

    this._handlers = new Map();
    this._ws = null;
    this._urlIndex = 0;
    this._attempt = 0;
    this._authFailures = 0;
    this._timer = null;
    this._nextRef = 1;
    this._pending = new Map();      // ref → {resolve, reject, frame, kind}
    this._queued = [];              // requests made while not connected: sent after the welcome
    this._sendWaiters = new Map();  // clientMsgId → [{resolve, reject}]
    this._settledIds = new Set();   // clientMsgIds acked or refused here (not to be taken back from another tab)
    this._typingSent = new Map();   // conversation → ms of the last active:true sent
    this._typingTimers = new Map(); // `${conversation}/${user}` → timer clearing a stale typing
    this._agentStatus = null;       // re-sent after every welcome
    this._ready = null;
    this._readyResolve = null;
    this._persisted = { epoch: null, positions: {}, outbox: [] };
    this._storeKey = null;
    this._saveScheduled = false;
    this._freshStart = false;       // after an epoch change: connect without resume
    this._stopped = false;
    this._connectGeneration = 0;
    this._activity = 0;             // a counter of events applied, for ordering ties of lastTs
    this._resetReady();
  }

  // ---- events

  /** Subscribes to an event; returns a function that unsubscribes. */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) { this._handlers.get(type)?.delete(fn); }
  once(type, fn) { const off = this.on(type, (v) => { off(); fn(v); }); return off; }
  _emit(type, value) {
    for (const fn of Array.from(this._handlers.get(type) || [])) {
      try { fn(value); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  /** Resolves with the welcome of the current (or next) session. */
  get ready() { return this._ready; }
  /** Messages handed to send() and not yet acknowledged, oldest first. */
  get outbox() { return this._persisted.outbox.slice(); }
  get connected() { return this.state === 'open'; }

  // ---- lifecycle

  start() {
    if (this.state !== 'idle') return;
    this._stopped = false;
    if (typeof globalThis.addEventListener === 'function' && globalThis.window) {
      this._onOnline = () => { if (this.state === 'reconnecting') this.reconnect(); };
      globalThis.addEventListener('online', this._onOnline);
      this._onHide = () => this._saveNow();
      globalThis.addEventListener('pagehide', this._onHide);
    }
    this._connect();
  }

  /** Reconnects now (after a sign-in, or when the app knows the network is back). */
  reconnect() {
    if (this._stopped) { this._stopped = false; }
    this._authFailures = 0;
    clearTimeout(this._timer);
    if (this._ws) { try { this._ws.close(1000); } catch { /* already closing */ } this._dropSocket(); }
    this._connect();
  }

  /** Closes for good: pending requests fail with `closed`; the outbox stays in the store. */
  close() {
    this._stopped = true;
    clearTimeout(this._timer);
    if (this._onOnline) globalThis.removeEventListener('online', this._onOnline);
    if (this._onHide) globalThis.removeEventListener('pagehide', this._onHide);
    this._saveNow();
    const ws = this._ws;
    this._dropSocket();
    if (ws) { try { ws.close(1000); } catch { /* ignore */ } }
    this._failPending(new ParleyError(ErrorCode.closed, 'client closed'), true);
    this._setState('closed');
  }

  _resetReady() {
    this._ready = new Promise((resolve) => { this._readyResolve = resolve; });
  }

  _setState(state, detail = {}) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', { state, ...detail });
  }

  async _connect() {
    if (this._stopped) return;
    // One attempt at a time: a reconnect() while this one waits for its token supersedes it.
    const attempt = ++this._connectGeneration;
    this._setState(this._attempt === 0 && !this.session ? 'connecting' : 'reconnecting');
    let token;
    try {
      token = await this.tokenProvider();
    } catch (e) {
      if (attempt !== this._connectGeneration) return;
      this._emit('error', new ParleyError(ErrorCode.unauthorized, 'token function failed: ' + (e?.message || e)));
      this._scheduleReconnect();
      return;
    }
    if (this._stopped || attempt !== this._connectGeneration) return;
    if (!token) { this._unauthorized('no token'); return; }
    await this._loadUser(tokenSubject(token));
    if (this._stopped || attempt !== this._connectGeneration) return;
    const url = this.urls[this._urlIndex % this.urls.length];
    let ws;
    try {
      ws = new this.WebSocketImpl(url, PROTOCOL);
    } catch (e) {
      this._emit('error', new ParleyError(ErrorCode.disconnected, 'cannot open ' + url + ': ' + (e?.message || e)));
      this._scheduleReconnect(true);
      return;
    }
    this._ws = ws;
    let welcomed = false;
    const connectTimer = setTimeout(() => { if (!welcomed && this._ws === ws) { try { ws.close(); } catch { /* */ } this._socketClosed(ws, 1006, 'timeout'); } }, this.connectTimeoutMs);
    ws.onopen = () => {
      const hello = { type: 'hello', token };
      const resume = this._freshStart ? {} : this._resumePositions();
      if (Object.keys(resume).length) hello.resume = resume;
      this._freshStart = false;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (m) => {
      if (this._ws !== ws) return;
      let frame;
      try { frame = JSON.parse(typeof m.data === 'string' ? m.data : new TextDecoder().decode(m.data)); } catch { return; }
      if (frame.type === 'welcome') { welcomed = true; clearTimeout(connectTimer); }
      this._receive(frame);
    };
    ws.onclose = (ev) => { clearTimeout(connectTimer); this._socketClosed(ws, ev.code, ev.reason); };
    ws.onerror = () => { /* onclose follows */ };
  }

  _dropSocket() {
    const ws = this._ws;
    this._ws = null;
    if (ws) { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; }
  }

  _socketClosed(ws, code, reason) {
    if (this._ws !== ws) return;
    this._dropSocket();
    const wasOpen = this.state === 'open';
    this._failPending(new ParleyError(ErrorCode.disconnected, `connection closed (${code})`), false);
    this._clearTypingState();
    if (wasOpen) this._resetReady();
    if (this._stopped) return;
    this._emit('disconnected', { code, reason });
    const advice = reconnectAdvice(code);
    if (advice === 'newToken') {
      this._authFailures += 1;
      if (this._authFailures >= 2) { this._unauthorized(reason || 'token refused'); return; }
      // Once: ask the app for a new token and try again at once.
      this._setState('reconnecting', { code });
      this._timer = setTimeout(() => this._connect(), 0);
      return;
    }
    if (advice === 'soon') {
      // The server is shutting down: another node (or this one restarted) very soon.
      this._urlIndex += 1;
      this._setState('reconnecting', { code });
      this._timer = setTimeout(() => this._connect(), 100 + Math.round(Math.random() * 900));
      return;
    }
    this._scheduleReconnect(!wasOpen);
  }

  _scheduleReconnect(rotate = false) {
    if (this._stopped) return;
    if (rotate) this._urlIndex += 1;
    const delay = backoffDelay(this._attempt, this.backoff);
    this._attempt += 1;
    this._setState('reconnecting', { inMs: delay });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _unauthorized(why) {
    this._stopped = true;
    this._failPending(new ParleyError(ErrorCode.unauthorized, why), true);
    this._setState('unauthorized', { reason: why });
    this._emit('unauthorized', { reason: why });
  }

  _failPending(error, includeQueued) {
    for (const [ref, p] of this._pending) {
      this._pending.delete(ref);
      if (p.kind !== 'send') p.reject(error);
    }
    if (includeQueued) {
      for (const q of this._queued.splice(0)) if (q.kind !== 'send') q.reject(error);
      for (const [, waiters] of this._sendWaiters) for (const w of waiters) w.reject(error);
      this._sendWaiters.clear();
    }
  }

  // ---- persisted state (per user: positions, epoch, outbox)

  async _loadUser(sub) {
    const key = 'parley:v1:' + (sub || 'anonymous');
    if (key === this._storeKey) return;
    this._storeKey = key;
    let saved = null;
    try { saved = JSON.parse((await this.store.get(key)) || 'null'); } catch { saved = null; }
    this._persisted = {
      epoch: saved?.epoch ?? null,
      positions: saved?.positions && typeof saved.positions === 'object' ? saved.positions : {},
      outbox: Array.isArray(saved?.outbox) ? saved.outbox.filter((m) => m && m.clientMsgId && m.conversation) : [],
    };
    if (this._persisted.outbox.length) this._emit('outbox', this.outbox);
  }

  /**
   * Positions are written at most every 100 ms (a replay of thousands of events is one write, not
   * thousands); the outbox is written at once (`_saveNow`), and everything on `pagehide`. A
   * position that lags only means a resume from a little earlier: the extra events are dropped
   * by seq here or, after a reload, merged by seq with the history the app loads.
   */
  _save() {
    if (this._saveScheduled) return;
    this._saveScheduled = true;
    this._saveTimer = setTimeout(() => this._saveNow(), 100);
  }

  _saveNow() {
    clearTimeout(this._saveTimer);
    this._saveScheduled = false;
    if (!this._storeKey) return undefined;
    this._mergeOtherTabs();
    return this.store.set(this._storeKey, JSON.stringify(this._persisted));
  }

  /**
   * Another tab of the same user shares a synchronous store (localStorage): before writing, take
   * in its outbox, so neither drops the other's unacknowledged messages (they are resent by
   * whichever tab connects; the server stores each clientMsgId once). Positions are this page's
   * own: the last writer's stand, and a reloaded page loads history anyway.
   */
  _mergeOtherTabs() {
    let raw;
    try { raw = this.store.get(this._storeKey); } catch { return; }
    if (!raw || typeof raw.then === 'function') return;
    let theirs;
    try { theirs = JSON.parse(raw); } catch { return; }
    if (!theirs || theirs.epoch !== this._persisted.epoch) return;
    const mine = new Set(this._persisted.outbox.map((m) => m.clientMsgId));
    const added = (theirs.outbox || []).filter((m) => m && m.clientMsgId && !mine.has(m.clientMsgId) && !this._settledIds.has(m.clientMsgId));
    if (added.length) {
      this._persisted.outbox = this._persisted.outbox.concat(added).sort((a, b) => (a.at || 0) - (b.at || 0));
      queueMicrotask(() => this._emit('outbox', this.outbox));
    }
  }

  _settled(clientMsgId) {
    this._settledIds.add(clientMsgId);
    if (this._settledIds.size > 1000) this._settledIds.delete(this._settledIds.values().next().value);
  }

  _resumePositions() {
    const entries = Object.entries(this._persisted.positions).filter(([, s]) => Number.isInteger(s) && s >= 0);
    // The server takes at most 1000: keep the most recently used ones.
    return Object.fromEntries(entries.slice(-Limits.maxResume));
  }

  // ---- frames in

  _receive(f) {
    switch (f.type) {
      case 'welcome': this._welcome(f); return;
      case 'error': {
        const err = new ParleyError(f.code, f.message, { ref: f.ref });
        if (f.ref !== undefined && this._pending.has(f.ref)) { this._settle(f.ref, null, err); return; }
        this._emit('error', err);
        return;
      }
      case 'ack': case 'conversation.opened': case 'history':
        if (f.type === 'conversation.opened' && f.conversation) this._mergeView(f.conversation);
        if (f.ref !== undefined) this._settle(f.ref, f, null);
        return;
      case 'typing': this._typing(f); return;
      case 'read': {
        const c = this.conversations.get(f.conversation);
        if (c) this._putConversation({ ...c, reads: { ...c.reads, [f.user.id]: Math.max(c.reads[f.user.id] || 0, f.seq) } });
        this._emit('read', f);
        return;
      }
      case 'presence': this.presence = { ...this.presence, [f.user.id]: f.status }; this._emit('presence', f); return;
      case 'queue': this.queue = f.waiting || []; this._emit('queue', this.queue); return;
      case 'resume_failed':
        delete this._persisted.positions[f.conversation];
        this._save();
        this._emit('resume_failed', f);
        return;
      default:
        if (SEQUENCED.has(f.type) && f.conversation && Number.isInteger(f.seq)) { this._event(f); return; }
        this._emit('frame', f);
    }
  }

  _welcome(w) {
    if (this._persisted.epoch && w.epoch !== this._persisted.epoch) {
      // History was restored or cut: positions mean nothing any more. Forget them and start this
      // session again without resume, so nothing is replayed against the wrong history.
      const previous = this._persisted.epoch;
      this._persisted.epoch = w.epoch;
      this._persisted.positions = {};
      this.conversations.clear();
      this._saveNow();
      this._emit('reset', { previousEpoch: previous, epoch: w.epoch });
      this._freshStart = true;
      const ws = this._ws;
      this._dropSocket();
      try { ws.close(1000); } catch { /* */ }
      this._connect();
      return;
    }
    this._persisted.epoch = w.epoch;
    this.session = w.session;
    this.epoch = w.epoch;
    this.user = w.user;
    this._attempt = 0;
    this._authFailures = 0;
    for (const v of w.conversations || []) {
      this._mergeView(v);
      // Not resumed: this client continues live from the welcome's lastSeq (the app loads history).
      if (this._persisted.positions[v.id] === undefined) this._persisted.positions[v.id] = v.lastSeq || 0;
    }
    this._save();
    this._setState('open');
    this._emit('welcome', w);
    this._readyResolve(w);
    if (this._agentStatus && w.user?.role === 'agent') this._transmit({ type: 'agent.status', status: this._agentStatus });
    // The outbox first, in order, then whatever was asked while disconnected.
    for (const m of this._persisted.outbox) this._transmitSend(m);
    for (const q of this._queued.splice(0)) this._transmitQueued(q);
  }

  _mergeView(v) {
    const known = this.conversations.get(v.id);
    const base = known ? { ...known } : conversationFrom(v);
    for (const k of ['status', 'customer', 'agent', 'order']) if (v[k] !== undefined) base[k] = v[k];
    base.lastSeq = Math.max(base.lastSeq, v.lastSeq || 0);
    base.readSeq = Math.max(base.readSeq, v.readSeq || 0);
    this._putConversation(base);
  }

  _putConversation(c) {
    this.conversations.set(c.id, c);
    this._emit('conversation', c);
  }

  _event(e) {
    const position = this._persisted.positions[e.conversation];
    if (position !== undefined && e.seq <= position) return;  // already delivered (a replay)
    if (position !== undefined && position > 0 && e.seq > position + 1) {
      this._emit('gap', { conversation: e.conversation, after: position, seq: e.seq });
    }
    this._persisted.positions[e.conversation] = e.seq;
    // Most recently active last, so the resume list keeps the live ones when it is cut.
    const p = this._persisted.positions; const s = p[e.conversation]; delete p[e.conversation]; p[e.conversation] = s;
    const known = this.conversations.get(e.conversation) || conversationFrom({ id: e.conversation, status: 'queued' });
    // `activity` orders conversations whose last events share a millisecond: the later arrival wins.
    this.conversations.set(e.conversation, { ...applyEvent(known, e), activity: ++this._activity });
    if (e.type === 'message' && e.from?.id === this.user?.id) this._delivered(e);
    this._save();
    this._emit('event', e);
    if (e.type === 'message') this._emit('message', e);
    this._emit('conversation', this.conversations.get(e.conversation));
  }

  _typing(f) {
    const c = this.conversations.get(f.conversation);
    const key = f.conversation + '/' + f.user.id;
    clearTimeout(this._typingTimers.get(key));
    this._typingTimers.delete(key);
    if (c) this._putConversation({ ...c, typing: { ...c.typing, [f.user.id]: !!f.active } });
    this._emit('typing', f);
    if (f.active) {
      // The server clears it after 5 s; if its `active:false` is lost with the connection, so do we.
      this._typingTimers.set(key, setTimeout(() => this._typing({ ...f, active: false }), Limits.typingTTLMs + 1000));
    }
  }

  _clearTypingState() {
    for (const t of this._typingTimers.values()) clearTimeout(t);
    this._typingTimers.clear();
    for (const c of this.conversations.values()) {
      for (const [user, active] of Object.entries(c.typing)) {
        if (active) this._typing({ type: 'typing', conversation: c.id, user: { id: user }, active: false });
      }
    }
  }

  // ---- frames out

  _transmit(frame) {
    if (!this._ws || this.state !== 'open') return false;
    try { this._ws.send(JSON.stringify(frame)); return true; } catch { return false; }
  }

  /** A request with a ref: resolves with its reply, rejects with a ParleyError. */
  _request(frame, kind = 'request') {
    return new Promise((resolve, reject) => {
      const q = { frame, kind, resolve, reject };
      if (this._stopped && this.state !== 'idle') { reject(new ParleyError(ErrorCode.closed, 'client closed')); return; }
      if (this.state === 'open') this._transmitQueued(q); else this._queued.push(q);
    });
  }

  _transmitQueued(q) {
    const ref = 'r' + this._nextRef++;
    this._pending.set(ref, q);
    if (!this._transmit({ ...q.frame, ref })) {
      this._pending.delete(ref);
      this._queued.push(q);
    }
  }

  _settle(ref, reply, error) {
    const p = this._pending.get(ref);
    if (!p) return;
    this._pending.delete(ref);
    if (error) p.reject(Object.assign(error, { request: p.frame })); else p.resolve(reply);
  }

  _transmitSend(m) {
    const frame = { type: 'message.send', conversation: m.conversation, clientMsgId: m.clientMsgId, text: m.text };
    const ref = 's' + this._nextRef++;
    this._pending.set(ref, {
      frame, kind: 'send',
      resolve: (ack) => this._acked(m.clientMsgId, ack),
      reject: (err) => this._sendFailed(m, err),
    });
    if (!this._transmit({ ...frame, ref })) this._pending.delete(ref);
  }

  _acked(clientMsgId, ack) {
    this._removeFromOutbox(clientMsgId);
    const waiters = this._sendWaiters.get(clientMsgId) || [];
    this._sendWaiters.delete(clientMsgId);
    for (const w of waiters) w.resolve(ack);
  }

  _delivered(e) {
    // Our own message came back as an event: it is stored, whether or not the ack made it here.
    if (!this._persisted.outbox.some((m) => m.clientMsgId === e.clientMsgId)) return;
    this._acked(e.clientMsgId, { type: 'ack', conversation: e.conversation, clientMsgId: e.clientMsgId, seq: e.seq, ts: e.ts });
  }

  _sendFailed(m, err) {
    if (err.code === ErrorCode.disconnected) return;  // resent after the next welcome
    if (err.retryable) {
      // Nothing was stored: the same clientMsgId again, a little later.
      setTimeout(() => { if (this.state === 'open' && this._persisted.outbox.includes(m)) this._transmitSend(m); }, backoffDelay(1, this.backoff));
      return;
    }
    this._removeFromOutbox(m.clientMsgId);
    const waiters = this._sendWaiters.get(m.clientMsgId) || [];
    this._sendWaiters.delete(m.clientMsgId);
    for (const w of waiters) w.reject(err);
    this._emit('send_failed', { message: m, error: err });
  }

  _removeFromOutbox(clientMsgId) {
    this._settled(clientMsgId);
    const before = this._persisted.outbox.length;
    this._persisted.outbox = this._persisted.outbox.filter((m) => m.clientMsgId !== clientMsgId);
    if (this._persisted.outbox.length !== before) { this._saveNow(); this._emit('outbox', this.outbox); }
  }

  // ---- requests (SPEC §4)

  /** Customers: opens (or returns) the conversation, on the last order by default. → view */
  async open({ order = 'last' } = {}) {
    const r = await this._request({ type: 'conversation.open', order });
    return this.conversations.get(r.conversation.id) || r.conversation;
  }

  /**
   * Sends a message: kept in the persisted outbox until acknowledged, resent with the same
   * clientMsgId after reconnects and reloads. → the ack {conversation, clientMsgId, seq, ts}.
   */
  async send(conversation, text, { clientMsgId = randomId() } = {}) {
    if (typeof text !== 'string' || text.length === 0) throw new ParleyError(ErrorCode.invalidRequest, 'text must not be empty');
    if (utf8Length(text) > Limits.maxTextBytes) throw new ParleyError(ErrorCode.tooLarge, `text over ${Limits.maxTextBytes} bytes`);
    const idBytes = utf8Length(clientMsgId);
    if (idBytes === 0 || idBytes > Limits.maxClientMsgIdBytes) throw new ParleyError(ErrorCode.invalidRequest, 'clientMsgId must be 1-64 bytes');
    const m = { conversation, clientMsgId, text, at: Date.now() };
    const done = new Promise((resolve, reject) => {
      if (!this._sendWaiters.has(clientMsgId)) this._sendWaiters.set(clientMsgId, []);
      this._sendWaiters.get(clientMsgId).push({ resolve, reject });
    });
    if (!this._persisted.outbox.some((x) => x.clientMsgId === clientMsgId)) {
      this._persisted.outbox.push(m);
      await this._saveNow();  // on disk (or in the store) before it is on the wire
      this._emit('outbox', this.outbox);
      if (this.state === 'open') this._transmitSend(m);
    }
    this.typing(conversation, false);
    return done;
  }

  /** Typing: call on every keystroke (sent at most every 3 s while it lasts), false when done. */
  typing(conversation, active = true) {
    const last = this._typingSent.get(conversation);
    const now = Date.now();
    if (active) {
      if (last !== undefined && now - last < Limits.typingTTLMs - 2000) return;
      this._typingSent.set(conversation, now);
    } else {
      if (last === undefined) return;
      this._typingSent.delete(conversation);
    }
    this._transmit({ type: 'typing', conversation, active: !!active });
  }

  /** Marks the conversation read up to `seq` (only ever forwards). */
  async read(conversation, seq) {
    const c = this.conversations.get(conversation);
    if (c && seq <= c.readSeq) return null;
    if (c) this._putConversation({ ...c, readSeq: seq });
    return this._request({ type: 'read', conversation, seq });
  }

  /** The latest `limit` events before `before` (default: the end), ascending. → events */
  async history(conversation, { before, limit } = {}) {
    const frame = { type: 'history', conversation };
    if (before !== undefined) frame.before = before;
    if (limit !== undefined) frame.limit = limit;
    const r = await this._request(frame);
    return r.events || [];
  }

  /** Agents: available, away or offline; re-sent after every reconnect. */
  async setStatus(status) {
    this._agentStatus = status;
    return this._request({ type: 'agent.status', status });
  }
  get agentStatus() { return this._agentStatus || 'away'; }

  claim(conversation) { return this._request({ type: 'conversation.claim', conversation }); }
  /** To an agent id, or null: back to the queue. */
  transfer(conversation, to) { return this._request({ type: 'conversation.transfer', conversation, to: to ?? null }); }
  resolve(conversation) { return this._request({ type: 'conversation.resolve', conversation }); }

  /** Customers, after resolution: a score of 1-5 and an optional comment. */
  async csat(conversation, score, comment) {
    if (!Number.isInteger(score) || score < 1 || score > 5) throw new ParleyError(ErrorCode.invalidRequest, 'score must be 1-5');
    if (comment !== undefined && comment !== null && utf8Length(comment) > Limits.maxCommentBytes) throw new ParleyError(ErrorCode.tooLarge, 'comment over 2 KiB');
    const frame = { type: 'csat', conversation, score };
    if (comment) frame.comment = comment;
    return this._request(frame);
  }
}
