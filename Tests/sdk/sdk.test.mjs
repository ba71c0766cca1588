// The JavaScript SDK against the real server (node --test; Node 20 needs --experimental-websocket).
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { connect, MemoryStore, ParleyError, ErrorCode, mergeEvents, backoffDelay, tokenSubject, reconnectAdvice } from '../../Sources/ParleyWeb/Resources/sdk/parley.js';
import { Server, next, until, unique, CuttableSocket } from './harness.mjs';

const fast = { initialMs: 20, maxMs: 400 };  // quick retries: these tests restart servers

/** Every sequenced event a client handed the app, per conversation, in order. */
function recorder(client) {
  const seen = {};
  client.on('event', (e) => { (seen[e.conversation] ||= []).push(e.seq); });
  return seen;
}
const range = (n) => Array.from({ length: n }, (_, i) => i + 1);

async function pair(server, { store, WebSocket } = {}) {
  const cust = unique('c-'), ag = unique('a-');
  await server.order(cust, 'o-1');
  const agent = connect({ url: server.url, token: () => server.token(ag, 'agent'), backoff: fast });
  await agent.ready;
  await agent.setStatus('available');
  const customer = connect({ url: server.url, token: () => server.token(cust, 'customer'), store, backoff: fast, WebSocket });
  await customer.ready;
  return { agent, customer, cust, ag };
}

test('close advice: the same table as the server and the Swift SDK (vectors/ws/close-advice.jsonl)', () => {
  const rows = readFileSync(new URL('../../Protocol/vectors/ws/close-advice.jsonl', import.meta.url), 'utf8').trim().split('\n').map(JSON.parse);
  assert.ok(rows.length > 5);
  for (const { code, advice } of rows) assert.equal(reconnectAdvice(code), advice, `close code ${code}`);
});

test('pure helpers: backoff, token subject, merge', () => {
  assert.equal(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 0), 50);
  assert.equal(backoffDelay(10, { initialMs: 100, maxMs: 1000 }, () => 1), 1000);
  const payload = Buffer.from(JSON.stringify({ sub: 'zoë', role: 'agent' })).toString('base64url');
  assert.equal(tokenSubject(`x.${payload}.y`), 'zoë');
  assert.equal(tokenSubject('garbage'), null);
  assert.deepEqual(mergeEvents([{ seq: 2 }, { seq: 3 }], [{ seq: 1 }, { seq: 3 }]).map((e) => e.seq), [1, 2, 3]);
});

test('opens on the last order; a restart mid-conversation loses nothing and doubles nothing', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    const { agent, customer } = await pair(server);
    const seenA = recorder(agent), seenC = recorder(customer);
    const conv = await customer.open();
    assert.equal(conv.order.id, 'o-1');
    for (let i = 0; i < 5; i++) await customer.send(conv.id, `before ${i}`);
    await until(agent, 'event', () => agent.conversations.get(conv.id)?.lastSeq >= 7);

    await server.kill('SIGKILL');
    const rewelcomed = Promise.all([next(agent, 'welcome'), next(customer, 'welcome')]);
    await server.start();  // same port, same data
    await rewelcomed;

    for (let i = 0; i < 5; i++) await customer.send(conv.id, `after ${i}`);
    await agent.send(conv.id, 'agent reply');
    const last = (await server.conversation(conv.id)).events.at(-1).seq;
    await until(agent, 'event', () => (seenA[conv.id] || []).at(-1) === last);
    await until(customer, 'event', () => (seenC[conv.id] || []).at(-1) === last);
    // Exactly once, in order, from seq 1: the agent may have been requeued and reassigned while
    // away (the server replays from seq 1 then), and still sees each event once.
    assert.deepEqual(seenC[conv.id], range(last));
    assert.deepEqual(seenA[conv.id], range(last));
    const texts = (await server.conversation(conv.id)).events.filter((e) => e.type === 'message').map((e) => e.text);
    assert.deepEqual(texts, [...range(5).map((i) => `before ${i - 1}`), ...range(5).map((i) => `after ${i - 1}`), 'agent reply']);
    agent.close(); customer.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('resume: what was said while a client was cut off arrives once, in order, when it is back', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    const { agent, customer } = await pair(server, { WebSocket: CuttableSocket });
    const seen = recorder(customer);
    const conv = await customer.open();
    await until(agent, 'conversation', () => agent.conversations.get(conv.id)?.status === 'assigned');
    await customer.send(conv.id, 'are you there?');
    const release = CuttableSocket.hold();
    CuttableSocket.instances.at(-1).drop();
    await until(customer, 'state', () => customer.state === 'reconnecting');
    const acks = [];
    for (let i = 0; i < 3; i++) acks.push(await agent.send(conv.id, `while away ${i}`));
    const back = next(customer, 'welcome');
    release();
    await back;
    await until(customer, 'event', () => (seen[conv.id] || []).at(-1) === acks.at(-1).seq);
    assert.deepEqual(seen[conv.id], range(acks.at(-1).seq));
    agent.close(); customer.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('a message typed while the server is down survives a reload and is stored once', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    const store = new MemoryStore();  // what localStorage keeps across the reload
    const cust = unique('c-');
    const token = () => server.token(cust, 'customer');
    const page1 = connect({ url: server.url, token, store, backoff: fast });
    const conv = await page1.open({ order: null });
    await server.kill('SIGKILL');
    await until(page1, 'state', () => page1.state === 'reconnecting');
    const offline = page1.send(conv.id, 'typed offline', { clientMsgId: 'offline-1' });
    offline.catch(() => {});  // the page goes away before it is sent
    await until(page1, 'outbox', () => page1.outbox.length === 1);
    page1.close();            // the reload: this page is gone, its outbox is in the store

    await server.start();
    const page2 = connect({ url: server.url, token, store, backoff: fast });
    assert.equal(page2.outbox.length, 0, 'nothing loaded before it knows the user');
    await page2.ready;
    await until(page2, 'outbox', () => page2.outbox.length === 0);
    const messages = (await server.conversation(conv.id)).events.filter((e) => e.type === 'message');
    assert.deepEqual(messages.map((m) => [m.clientMsgId, m.text]), [['offline-1', 'typed offline']]);
    page2.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('a send whose ack was lost is resent after a reload and stored once', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    const store = new MemoryStore();
    const cust = unique('c-');
    const token = () => server.token(cust, 'customer');
    // A socket that loses everything the server says about our message: no ack, no event.
    class LossyWebSocket extends WebSocket {
      set onmessage(fn) {
        super.onmessage = (m) => {
          const f = JSON.parse(m.data);
          if (f.clientMsgId === 'lost-ack') { this.lost = true; return; }
          fn(m);
        };
      }
    }
    const page1 = connect({ url: server.url, token, store, backoff: fast, WebSocket: LossyWebSocket });
    const conv = await page1.open({ order: null });
    page1.send(conv.id, 'was it sent?', { clientMsgId: 'lost-ack' }).catch(() => {});
    // Stored on the server (its event is there), while the page still holds it in the outbox.
    await (async function stored() {
      for (;;) {
        const evs = (await server.conversation(conv.id)).events;
        if (evs.some((e) => e.clientMsgId === 'lost-ack')) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    assert.equal(page1.outbox.length, 1);
    page1.close();

    const page2 = connect({ url: server.url, token, store, backoff: fast });
    await until(page2, 'outbox', () => page2.state === 'open' && page2.outbox.length === 0);
    const messages = (await server.conversation(conv.id)).events.filter((e) => e.type === 'message');
    assert.equal(messages.length, 1);
    assert.equal(messages[0].clientMsgId, 'lost-ack');
    page2.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('4001: one new token is asked for, then the client stops instead of looping', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    let calls = 0;
    const bad = connect({ url: server.url, token: async () => { calls += 1; return 'not-a-token'; }, backoff: fast });
    const u = await next(bad, 'unauthorized');
    assert.ok(u.reason);
    assert.equal(calls, 2);
    assert.equal(bad.state, 'unauthorized');
    await assert.rejects(bad.history('x'), (e) => e instanceof ParleyError && e.code === ErrorCode.closed);

    // A stale token, then a fresh one: the second connection is welcomed.
    let n = 0;
    const sub = unique('c-');
    const good = connect({ url: server.url, token: async () => (n++ === 0 ? 'stale' : server.token(sub, 'customer')), backoff: fast });
    const w = await good.ready;
    assert.equal(w.user.id, sub);
    assert.equal(n, 2);
    good.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('a new epoch resets the client: no resume against another history', { timeout: 60_000 }, async () => {
  const first = await new Server().start();
  const second = new Server({ port: first.port, secret: first.secret, apiKey: first.apiKey });
  try {
    const store = new MemoryStore();
    const cust = unique('c-');
    const client = connect({ url: first.url, token: () => first.token(cust, 'customer'), store, backoff: fast });
    const conv = await client.open({ order: null });
    await client.send(conv.id, 'hello');
    const oldEpoch = client.epoch;
    await first.kill('SIGKILL');
    const reset = next(client, 'reset');
    await second.start();  // a different data dir: another history
    const r = await reset;
    assert.equal(r.previousEpoch, oldEpoch);
    const w = await next(client, 'welcome');
    assert.notEqual(w.epoch, oldEpoch);
    assert.equal(client.epoch, w.epoch);
    assert.equal(client.conversations.has(conv.id), false);
    const saved = JSON.parse(store.get(`parley:v1:${cust}`));
    assert.deepEqual(saved.positions, {});
    const fresh = await client.open({ order: null });
    assert.notEqual(fresh.id, conv.id);
    client.close();
  } finally { await first.kill(); await second.kill(); first.cleanup(); second.cleanup(); }
});

test('history pages back through a long thread, each event once', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    const { agent, customer } = await pair(server);
    const conv = await customer.open();
    await Promise.all(range(120).map((i) => customer.send(conv.id, `m${i}`)));
    const last = customer.conversations.get(conv.id).lastSeq;
    let page = await agent.history(conv.id, { limit: 50 });
    assert.equal(page.length, 50);
    assert.equal(page.at(-1).seq, last);
    let all = page;
    while (page.length && page[0].seq > 1) {
      page = await agent.history(conv.id, { before: page[0].seq, limit: 50 });
      all = mergeEvents(all, page);
    }
    assert.deepEqual(all.map((e) => e.seq), range(last));
    assert.equal((await agent.history(conv.id, { limit: 5000 })).length, last, 'limit is clamped, not refused');
    agent.close(); customer.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('typing, read receipts, errors as typed values, and 1001 at shutdown', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    const { agent, customer, ag } = await pair(server);
    const conv = await customer.open();
    await until(agent, 'conversation', () => agent.conversations.get(conv.id)?.status === 'assigned');
    const typing = next(agent, 'typing', (t) => t.active);
    customer.typing(conv.id);
    assert.equal((await typing).user.id, customer.user.id);
    const ack = await customer.send(conv.id, 'hi');
    const read = next(customer, 'read');
    await agent.read(conv.id, ack.seq);
    assert.deepEqual([(await read).user.id, (await read).seq], [ag, ack.seq]);
    assert.equal(customer.conversations.get(conv.id).reads[ag], ack.seq);

    await assert.rejects(customer.claim(conv.id), (e) => e instanceof ParleyError && e.code === ErrorCode.forbidden);
    await assert.rejects(customer.send('00000000-0000-4000-8000-000000000000', 'x'), (e) => e.code === ErrorCode.notFound);
    assert.equal(customer.outbox.length, 0, 'a refused message leaves the outbox');
    await assert.rejects(customer.send(conv.id, ''), (e) => e.code === ErrorCode.invalidRequest);
    await assert.rejects(customer.send(conv.id, 'x'.repeat(16 * 1024 + 1)), (e) => e.code === ErrorCode.tooLarge);

    const bye = next(customer, 'disconnected');
    await server.kill('SIGTERM');
    assert.equal((await bye).code, 1001);
    const back = next(customer, 'welcome');
    await server.start();
    await back;
    await agent.resolve(conv.id).catch(async (e) => { assert.equal(e.code, ErrorCode.disconnected); await agent.ready; return agent.resolve(conv.id); });
    await until(customer, 'conversation', () => customer.conversations.get(conv.id)?.status === 'resolved');
    const csat = await customer.csat(conv.id, 5, 'quick');
    assert.ok(csat.seq > ack.seq);
    agent.close(); customer.close();
  } finally { await server.kill(); server.cleanup(); }
});

test('a reconnect while the token is being fetched opens one connection, not two', { timeout: 60_000 }, async () => {
  const server = await new Server().start();
  try {
    let release;
    const gate = new Promise((r) => { release = r; });
    let calls = 0;
    const sub = unique('c-');
    const before = CuttableSocket.instances.length;
    const client = connect({ url: server.url, token: async () => { calls += 1; await gate; return server.token(sub, 'customer'); }, WebSocket: CuttableSocket, backoff: fast });
    client.reconnect();  // e.g. the browser said it is online again
    release();
    await client.ready;
    assert.equal(calls, 2);
    assert.equal(CuttableSocket.instances.length - before, 1, 'the superseded attempt dialled nothing');
    client.close();
  } finally { await server.kill(); server.cleanup(); }
});
