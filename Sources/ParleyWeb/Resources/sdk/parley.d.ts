// Types for parley.js, the JavaScript SDK for Parley's chat protocol v1 (Protocol/SPEC.md §4).

export const PROTOCOL: 'parley.v1';
export const VERSION: string;

export const CloseCode: Readonly<{
  normal: 1000; goingAway: 1001; protocolError: 1002; unsupportedData: 1003; invalidPayload: 1007;
  policyViolation: 1008; messageTooBig: 1009; internalError: 1011; unauthorized: 4001;
}>;

export type ErrorCodeValue =
  | 'invalid_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'too_large'
  | 'rate_limited' | 'unavailable' | 'disconnected' | 'closed';

export const ErrorCode: Readonly<{
  invalidRequest: 'invalid_request'; unauthorized: 'unauthorized'; forbidden: 'forbidden';
  notFound: 'not_found'; conflict: 'conflict'; tooLarge: 'too_large'; rateLimited: 'rate_limited';
  unavailable: 'unavailable'; disconnected: 'disconnected'; closed: 'closed';
}>;

export const Limits: Readonly<{
  maxTextBytes: number; maxCommentBytes: number; maxClientMsgIdBytes: number; maxResume: number;
  historyDefault: number; historyMax: number; typingTTLMs: number;
}>;

export class ParleyError extends Error {
  readonly code: ErrorCodeValue;
  readonly ref?: string;
  readonly request?: Record<string, unknown>;
  /** The same request may succeed later: nothing was stored. */
  readonly retryable: boolean;
}

/** Where positions and the outbox live between page loads; methods may return promises. */
export interface Store {
  get(key: string): string | null | Promise<string | null>;
  set(key: string, value: string): void | Promise<void>;
  remove(key: string): void | Promise<void>;
}
export class MemoryStore implements Store { get(key: string): string | null; set(key: string, value: string): void; remove(key: string): void; }
export class LocalStorageStore implements Store { constructor(storage?: Storage); get(key: string): string | null; set(key: string, value: string): void; remove(key: string): void; }
export function defaultStore(): Store;

export interface Person { id: string; role: 'customer' | 'agent'; name: string; }
export type Order = { id: string; placedAt: string; status: string; total: string | number; currency: string; items: Array<{ name: string; quantity: number; price?: string | number }>; [k: string]: unknown } | null;
export type ConversationStatus = 'queued' | 'assigned' | 'resolved';

export interface ConversationView {
  id: string; status: ConversationStatus; customer: Person | null; agent: Person | null; order: Order;
  lastSeq: number; readSeq: number;
}

/** A conversation as the client knows it: the view, then every event applied. */
export interface Conversation extends ConversationView {
  lastTs: number;
  /** userId → the highest seq they have read (from live read receipts). */
  reads: Record<string, number>;
  /** userId → typing now. */
  typing: Record<string, boolean>;
  csat: { score: number; comment: string | null } | null;
}

interface Sequenced { conversation: string; seq: number; ts: number; }
export type SequencedEvent =
  | (Sequenced & { type: 'conversation.created'; customer: Person; order: Order })
  | (Sequenced & { type: 'message'; from: Person; text: string; clientMsgId: string })
  | (Sequenced & { type: 'order.attached'; order: Order })
  | (Sequenced & { type: 'conversation.assigned'; agent: Person })
  | (Sequenced & { type: 'conversation.transferred'; from: Person | null; to: Person | null })
  | (Sequenced & { type: 'conversation.resolved'; by: Person })
  | (Sequenced & { type: 'csat'; from: Person; score: number; comment: string | null });

export interface Welcome { type: 'welcome'; session: string; epoch: string; user: Person; conversations: ConversationView[]; }
export interface Ack { type: 'ack'; conversation?: string; clientMsgId?: string; seq?: number; ts?: number; }
export interface OutboxMessage { conversation: string; clientMsgId: string; text: string; at: number; }
export interface Waiting { conversation: string; customer: Person; since: number; }
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'unauthorized' | 'closed';

export interface ClientEvents {
  state: { state: ConnectionState; code?: number; inMs?: number; reason?: string };
  welcome: Welcome;
  /** Every sequenced event, exactly once per conversation, in seq order. */
  event: SequencedEvent;
  message: Extract<SequencedEvent, { type: 'message' }>;
  conversation: Conversation;
  typing: { type: 'typing'; conversation: string; user: Person; active: boolean };
  read: { type: 'read'; conversation: string; user: Person; seq: number };
  presence: { type: 'presence'; user: { id: string; role: string }; status: 'online' | 'offline' | 'available' | 'away' };
  queue: Waiting[];
  outbox: OutboxMessage[];
  send_failed: { message: OutboxMessage; error: ParleyError };
  resume_failed: { type: 'resume_failed'; conversation: string; reason: 'not_found' | 'forbidden' | 'beyond_end' };
  /** The server's history changed (new epoch): positions were dropped; reload what you show. */
  reset: { previousEpoch: string; epoch: string };
  gap: { conversation: string; after: number; seq: number };
  disconnected: { code: number; reason: string };
  unauthorized: { reason: string };
  error: ParleyError;
  frame: Record<string, unknown>;
}

export interface ConnectOptions {
  /** ws(s)://host/v1/ws, or several: another is tried after 1001 or a failed connection. */
  url: string | string[];
  /** Asked at every connection; the app's backend mints it (POST /v1/tokens). */
  token: () => Promise<string> | string;
  store?: Store;
  WebSocket?: typeof WebSocket;
  backoff?: { initialMs?: number; maxMs?: number };
  connectTimeoutMs?: number;
}

export class ParleyClient {
  constructor(options: ConnectOptions);
  readonly state: ConnectionState;
  readonly user: Person | null;
  readonly session: string | null;
  readonly epoch: string | null;
  readonly conversations: Map<string, Conversation>;
  readonly queue: Waiting[];
  readonly presence: Record<string, string>;
  readonly ready: Promise<Welcome>;
  readonly outbox: OutboxMessage[];
  readonly connected: boolean;
  readonly agentStatus: 'available' | 'away' | 'offline';

  on<K extends keyof ClientEvents>(type: K, fn: (value: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, fn: (value: ClientEvents[K]) => void): void;
  once<K extends keyof ClientEvents>(type: K, fn: (value: ClientEvents[K]) => void): () => void;

  start(): void;
  reconnect(): void;
  close(): void;

  open(options?: { order?: 'last' | string | null }): Promise<Conversation | ConversationView>;
  send(conversation: string, text: string, options?: { clientMsgId?: string }): Promise<Ack>;
  typing(conversation: string, active?: boolean): void;
  read(conversation: string, seq: number): Promise<Ack | null>;
  history(conversation: string, options?: { before?: number; limit?: number }): Promise<SequencedEvent[]>;
  setStatus(status: 'available' | 'away' | 'offline'): Promise<Ack>;
  claim(conversation: string): Promise<Ack>;
  transfer(conversation: string, to: string | null): Promise<Ack>;
  resolve(conversation: string): Promise<Ack>;
  csat(conversation: string, score: 1 | 2 | 3 | 4 | 5, comment?: string): Promise<Ack>;
}

export function connect(options: ConnectOptions): ParleyClient;
export function mergeEvents<E extends { seq: number }>(list: E[], events: E[]): E[];
export function conversationFrom(view: ConversationView): Conversation;
export function applyEvent(c: Conversation, e: SequencedEvent): Conversation;
export function backoffDelay(attempt: number, options?: { initialMs?: number; maxMs?: number }, random?: () => number): number;
export function tokenSubject(token: string): string | null;
export function randomId(): string;
export function utf8Length(s: string): number;
