// The agent's event log: a bounded in-memory ring of numbered events and
// the subscriptions that read it.
//
// - Numbering: every event gets the next sequence number of this process's
//   epoch (a random id made at start), 1, 2, 3... without gaps. A restarted
//   agent has a new epoch and starts again at 1, so (epoch, seq) names one
//   event for good.
// - Resume: a subscriber passing the last (epoch, seq) it saw reads every
//   later event from the ring, then live ones. When an event it would need
//   is no longer held (the ring wrapped), or the epoch is not this one, it
//   gets `out_of_range` (EVENTS_EVICTED / EPOCH_CHANGED): its picture of the
//   agent may have a hole, so it must resynchronise.
// - Slow readers: a subscription is a cursor into the ring, never a queue of
//   its own, so nothing is ever coalesced or dropped silently and a stalled
//   stream costs no memory beyond its cursor. A reader that falls more than
//   `maxLag` events behind what was published since it subscribed is ended
//   with `exhausted` (SLOW_CONSUMER) while its events are still in the ring:
//   it resumes at once and loses nothing. If it still cannot keep up, its
//   next missing event is eventually evicted and it gets `out_of_range`.
import { randomBytes } from "node:crypto";
import { DomainError } from "../errors.js";
import { lbIdOf, summarize, type AgentEvent, type EventKind, type PublishedEvent } from "./model.js";

export interface EventFilter {
  /** Empty or absent: all kinds. */
  kinds?: EventKind[];
  /** Only events about these load balancers (agent-wide events are left out). */
  lbIds?: string[];
}

export interface SubscribeOptions {
  /** Resume after this event (0 = from the first of the epoch); absent = live only. */
  sinceSeq?: number;
  /** The epoch `sinceSeq` belongs to; "" or absent = the current one. */
  epoch?: string;
  filter?: EventFilter;
  /** After this long without a message, next() yields a keepalive (0 = never). */
  keepaliveMs?: number;
}

export type SubscriptionItem =
  | { type: "event"; event: PublishedEvent }
  /** Everything up to `seq` that passes the filter was delivered. */
  | { type: "keepalive"; seq: number };

export interface EventLogOptions {
  /** Events held for resumes (default 10,000). */
  size?: number;
  /** Lag (events published since subscribing, not yet read) that ends a stream as SLOW_CONSUMER (default half the ring). */
  maxLag?: number;
  /** Fixed epoch (tests); default random. */
  epoch?: string;
}

export const DEFAULT_RING_SIZE = 10_000;

export class EventLog {
  readonly epoch: string;
  readonly size: number;
  readonly maxLag: number;
  private readonly ring: (PublishedEvent | undefined)[];
  private head = 0;
  private readonly subs = new Set<EventSubscription>();
  private closed = false;
  /** Published events by kind (metrics). */
  readonly published = new Map<EventKind, number>();
  /** Streams ended because they fell behind, by reason (metrics). */
  readonly ended = new Map<"SLOW_CONSUMER" | "EVENTS_EVICTED", number>();
  /** Called with every published event (the agent logs them). */
  onPublish?: (e: PublishedEvent) => void;

  constructor(o: EventLogOptions = {}) {
    this.size = Math.max(1, Math.floor(o.size ?? DEFAULT_RING_SIZE));
    this.maxLag = Math.max(1, Math.floor(o.maxLag ?? Math.max(1, this.size / 2)));
    this.ring = new Array(this.size);
    this.epoch = o.epoch ?? randomBytes(8).toString("hex");
  }

  /** The newest sequence number (0 = nothing published yet). */
  get headSeq(): number {
    return this.head;
  }

  /** The oldest sequence number still held (0 = none). */
  get oldestSeq(): number {
    return this.head === 0 ? 0 : Math.max(1, this.head - this.size + 1);
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  /** Numbers, stores and hands out one event. Never throws. */
  publish(event: AgentEvent): PublishedEvent {
    const e: PublishedEvent = { seq: ++this.head, epoch: this.epoch, time: new Date(), event, summary: summarize(event) };
    this.ring[(e.seq - 1) % this.size] = e;
    this.published.set(event.kind, (this.published.get(event.kind) ?? 0) + 1);
    try {
      this.onPublish?.(e);
    } catch {
      // A logging hook never keeps an event from its readers.
    }
    for (const s of this.subs) s.wake();
    return e;
  }

  /** The event with this number if the ring still holds it. */
  get(seq: number): PublishedEvent | undefined {
    if (seq < this.oldestSeq || seq > this.head || seq < 1) return undefined;
    return this.ring[(seq - 1) % this.size];
  }

  /**
   * A subscription starting after `sinceSeq` (checked now: a resume point
   * that cannot be served throws `out_of_range` before anything is sent).
   */
  subscribe(o: SubscribeOptions = {}): EventSubscription {
    if (o.sinceSeq !== undefined) this.checkResume(o.sinceSeq, o.epoch ?? "");
    const s = new EventSubscription(this, o, (x) => this.subs.delete(x));
    if (this.closed) s.close();
    else this.subs.add(s);
    return s;
  }

  private checkResume(since: number, epoch: string): void {
    if (epoch && epoch !== this.epoch) {
      throw new DomainError(
        "out_of_range",
        `events of epoch ${epoch} are gone: the agent restarted (epoch now ${this.epoch}); resynchronise`,
        `epoch ${this.epoch}, newest event ${this.head}`,
        "EPOCH_CHANGED",
      );
    }
    if (since > this.head) {
      throw new DomainError(
        "out_of_range",
        `event ${since} has not happened in epoch ${this.epoch} (newest is ${this.head}); resynchronise`,
        `epoch ${this.epoch}, newest event ${this.head}`,
        "SEQ_AHEAD",
      );
    }
    if (since + 1 < this.oldestSeq) throw this.evicted(since + 1);
  }

  /** @internal */
  evicted(seq: number): DomainError {
    return new DomainError(
      "out_of_range",
      `event ${seq} is no longer held (the ring keeps ${this.size} events, oldest now ${this.oldestSeq}); resynchronise`,
      `epoch ${this.epoch}, oldest event ${this.oldestSeq}, newest ${this.head}`,
      "EVENTS_EVICTED",
    );
  }

  /** @internal */
  countEnd(reason: "SLOW_CONSUMER" | "EVENTS_EVICTED"): void {
    this.ended.set(reason, (this.ended.get(reason) ?? 0) + 1);
  }

  /** Ends every subscription normally; later ones end at once. */
  close(): void {
    this.closed = true;
    for (const s of [...this.subs]) s.close();
  }
}

export class EventSubscription implements AsyncIterable<SubscriptionItem> {
  /** The next sequence number to look at. */
  private cursor: number;
  /** Published before the subscription began: a backlog being replayed is no lag. */
  private readonly startHead: number;
  private readonly kinds?: Set<EventKind>;
  private readonly lbIds?: Set<string>;
  private waiter?: () => void;
  private lastSent = Date.now();
  closed = false;

  constructor(
    private readonly log: EventLog,
    private readonly o: SubscribeOptions,
    private readonly onClose: (s: EventSubscription) => void,
  ) {
    this.startHead = log.headSeq;
    this.cursor = o.sinceSeq !== undefined ? o.sinceSeq + 1 : log.headSeq + 1;
    if (o.filter?.kinds?.length) this.kinds = new Set(o.filter.kinds);
    if (o.filter?.lbIds?.length) this.lbIds = new Set(o.filter.lbIds.map((s) => s.toLowerCase()));
  }

  /** The last sequence number this subscriber has been brought up to. */
  get position(): number {
    return this.cursor - 1;
  }

  private matches(e: PublishedEvent): boolean {
    if (this.kinds && !this.kinds.has(e.event.kind)) return false;
    if (this.lbIds && !this.lbIds.has(lbIdOf(e.event))) return false;
    return true;
  }

  /** @internal A new event was published. */
  wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /**
   * The next event (or keepalive); undefined once closed. Throws
   * `out_of_range` when the next event was evicted before it was read, and
   * `exhausted` when this reader fell more than maxLag behind.
   */
  async next(): Promise<SubscriptionItem | undefined> {
    for (;;) {
      if (this.closed) return undefined;
      const head = this.log.headSeq;
      while (this.cursor <= head) {
        if (this.cursor < this.log.oldestSeq) {
          this.log.countEnd("EVENTS_EVICTED");
          throw this.log.evicted(this.cursor);
        }
        const lag = head - Math.max(this.cursor - 1, this.startHead);
        if (lag > this.log.maxLag) {
          this.log.countEnd("SLOW_CONSUMER");
          throw new DomainError(
            "exhausted",
            `this stream fell ${lag} events behind (limit ${this.log.maxLag}); resume after event ${this.cursor - 1} to get the rest`,
            `epoch ${this.log.epoch}, resume after ${this.cursor - 1}, newest ${head}`,
            "SLOW_CONSUMER",
          );
        }
        const e = this.log.get(this.cursor)!;
        this.cursor++;
        if (this.matches(e)) {
          this.lastSent = Date.now();
          return { type: "event", event: e };
        }
      }
      const k = this.o.keepaliveMs ?? 0;
      const wait = k > 0 ? Math.max(0, this.lastSent + k - Date.now()) : -1;
      if (wait === 0) {
        this.lastSent = Date.now();
        return { type: "keepalive", seq: this.cursor - 1 };
      }
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
        if (wait > 0) {
          timer = setTimeout(() => this.wake(), wait);
          timer.unref();
        }
      });
    }
  }

  /** Idempotent; a pending next() resolves undefined. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake();
    this.onClose(this);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SubscriptionItem> {
    try {
      for (;;) {
        const i = await this.next();
        if (!i) return;
        yield i;
      }
    } finally {
      this.close();
    }
  }
}
