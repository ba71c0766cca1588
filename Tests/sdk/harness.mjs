// Starts the real `parley` binary for the SDK tests and talks to its REST API.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.PARLEY_BIN || join(ROOT, '.build', 'debug', 'parley');
export const SDK = join(ROOT, 'Sources', 'ParleyWeb', 'Resources', 'sdk', 'parley.js');

const started = new Set();
process.on('exit', () => { for (const p of started) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

export class Server {
  constructor({ dataDir, port = 0, secret, apiKey, args = [] } = {}) {
    this.dataDir = dataDir || mkdtempSync(join(tmpdir(), 'parley-sdk-'));
    this.secret = secret || randomBytes(32).toString('hex');
    this.apiKey = apiKey || randomBytes(16).toString('hex');
    this.port = port;
    this.args = args;
  }

  /** Starts it and resolves once it listens (the log line naming its port). */
  start() {
    const argv = ['serve', '--port', String(this.port), '--data-dir', this.dataDir, '--jwt-secret', this.secret,
      '--api-key', this.apiKey, ...this.args];
    this.proc = spawn(BIN, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    started.add(this.proc);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, sig) => { started.delete(this.proc); resolve({ code, sig }); }));
    return new Promise((resolve, reject) => {
      let log = '';
      const onData = (d) => {
        log += d.toString();
        const m = log.match(/http\.port=(\d+)/);
        if (m) { this.port = Number(m[1]); this.proc.stderr.off('data', onData); this.proc.stderr.resume(); resolve(this); }
      };
      this.proc.stderr.on('data', onData);
      this.proc.once('exit', () => reject(new Error('server exited before listening:\n' + log)));
    });
  }

  get url() { return `ws://127.0.0.1:${this.port}/v1/ws`; }
  get http() { return `http://127.0.0.1:${this.port}`; }

  async kill(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }

  cleanup() { rmSync(this.dataDir, { recursive: true, force: true }); }

  async rest(method, path, body) {
    const r = await fetch(this.http + path, {
      method, headers: { authorization: `Bearer ${this.apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async token(sub, role, extra = {}) {
    return (await this.rest('POST', '/v1/tokens', { sub, role, name: sub.toUpperCase(), ttl: 3600, ...extra })).token;
  }

  async order(user, id, placedAt = '2026-11-20T09:00:00Z') {
    return this.rest('PUT', `/v1/users/${user}/orders/${id}`, {
      placedAt, status: 'shipped', total: '24.90', currency: 'EUR', items: [{ name: 'Kettle', quantity: 1 }],
    });
  }

  async conversation(id) { return this.rest('GET', `/v1/conversations/${id}`); }
}

/** Resolves with the first value `emitter.on(type)` gives that `test` accepts. */
export function next(client, type, test = () => true) {
  return new Promise((resolve) => {
    const off = client.on(type, (v) => { if (test(v)) { off(); resolve(v); } });
  });
}

/** Resolves once `check()` is true, re-checked whenever the client emits `type`. */
export function until(client, type, check) {
  return new Promise((resolve) => {
    if (check()) { resolve(); return; }
    const off = client.on(type, () => { if (check()) { off(); resolve(); } });
  });
}

export const unique = (p) => `${p}${randomBytes(4).toString('hex')}`;

/**
 * A WebSocket the test can cut (as a network drop would) and hold down: while `held`, new
 * connections wait before dialling. Implements what the SDK uses of the WebSocket API.
 */
export class CuttableSocket {
  static held = null;        // a promise new connections wait for, or null
  static instances = [];
  static hold() { let release; CuttableSocket.held = new Promise((r) => { release = r; }); return () => { CuttableSocket.held = null; release(); }; }

  constructor(url, protocol) {
    CuttableSocket.instances.push(this);
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    const dial = () => {
      if (this.cutBeforeOpen) { this.onclose?.({ code: 1006, reason: 'cut' }); return; }
      const ws = new WebSocket(url, protocol);
      this.ws = ws;
      ws.onopen = (e) => this.onopen?.(e);
      ws.onmessage = (m) => this.onmessage?.(m);
      ws.onclose = (e) => { if (!this.cut) this.onclose?.(e); };
      ws.onerror = (e) => this.onerror?.(e);
    };
    if (CuttableSocket.held) CuttableSocket.held.then(dial); else dial();
  }
  send(data) { this.ws.send(data); }
  close(code) { this.ws ? this.ws.close(code) : (this.cutBeforeOpen = true); }
  /** Drops the connection under the SDK: it sees an abnormal close (1006) at once. */
  drop() { this.cut = true; this.ws?.close(); this.onclose?.({ code: 1006, reason: 'cut' }); }
}
