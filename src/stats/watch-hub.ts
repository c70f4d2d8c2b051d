// size: subscription queues, shared poll groups and the hub that owns them
// change together (a queue's coalescing depends on its group's timing); the
// pure filter/diff helpers at the top are the first thing to split out.
// Streams of stats for many subscribers at the cost of one poll per load
// balancer per interval: subscribers with the same interval share a poll
// group; each subscriber has a small bounded queue that collapses into one
// complete snapshot (with a count of what it missed) when it reads too slowly.
import type { Logger } from "../log.js";
import type { LoadBalancerEvent } from "../haproxy/catalog.js";
import { DeltaTracker } from "./deltas.js";
import { matcher } from "./match.js";
import type { CollectedStats, StatsCollector } from "./collector.js";
import { sameCounters, type LoadBalancerStats, type MemberStats, type PoolStats, type StatsFilter } from "./model.js";

export type WatchMode = "snapshots" | "changes";

export interface StatsUpdate {
  loadBalancers: LoadBalancerStats[];
  removedLbIds: string[];
  collectedAt: Date;
  /** A complete snapshot (for the subscriber's filter). */
  full: boolean;
  /** Sent between ticks because a status changed: statuses only, no counters. */
  statusOnly: boolean;
  missedUpdates: number;
  sequence: number;
}

export interface WatchOptions {
  intervalMs: number;
  filter?: StatsFilter;
  mode: WatchMode;
  /**
   * Updates queued before they collapse into one snapshot. Default 2 for
   * SNAPSHOTS (a newer snapshot supersedes older ones: queuing more only
   * adds lag) and 8 for CHANGES.
   */
  queueLimit?: number;
  /**
   * After this long without a message, send an empty one (no load
   * balancers, not full): idle connections are otherwise closed by the
   * server's inactivity timeout. 0 = never.
   */
  keepaliveMs?: number;
}

export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 3_600_000;
/**
 * CHANGES promises status changes at once, not at the next tick: while a
 * CHANGES subscriber has a longer interval than this, every load balancer
 * is also polled this often (one probe for all groups; it only feeds the
 * status-change path).
 */
export const STATUS_PROBE_MS = 1000;

type Pending = Omit<StatsUpdate, "missedUpdates" | "sequence">;

// ---- filtering and change detection (pure) ----

export function filterStats(lbs: LoadBalancerStats[], filter: StatsFilter | undefined): LoadBalancerStats[] {
  const lbIds = filter?.lbIds?.length ? new Set(filter.lbIds) : undefined;
  const lIds = filter?.listenerIds?.length ? new Set(filter.listenerIds) : undefined;
  const out: LoadBalancerStats[] = [];
  for (const lb of lbs) {
    if (lbIds && !lbIds.has(lb.lbId)) continue;
    if (!lIds) {
      out.push(lb);
      continue;
    }
    const listeners = lb.listeners.filter((l) => lIds.has(l.listenerId));
    const pools = lb.pools.filter((p) => lIds.has(p.listenerId));
    if (listeners.length || pools.length) out.push({ ...lb, listeners, pools });
  }
  return out;
}

function memberChanged(a: MemberStats, b: MemberStats): boolean {
  return a.status !== b.status || a.weight !== b.weight || a.currentSessions !== b.currentSessions ||
    a.maxSessions !== b.maxSessions || a.checkStatus !== b.checkStatus || a.checkFailures !== b.checkFailures ||
    !sameCounters(a.totals!, b.totals!);
}

/** Only what changed between two polls of a load balancer; undefined if nothing. */
export function diffLb(prev: LoadBalancerStats | undefined, cur: LoadBalancerStats): LoadBalancerStats | undefined {
  if (!prev) return cur;
  // The delta tracker hands out an object that did not move as the very
  // same object: most of a big load balancer compares by identity.
  if (prev === cur) return undefined;
  const pl = matcher(prev.listeners, (l) => l.listenerId);
  const listeners = cur.listeners.filter((l, i) => {
    const p = pl(l, i);
    if (p === l) return false;
    return !p || p.status !== l.status || p.currentSessions !== l.currentSessions || p.maxSessions !== l.maxSessions ||
      p.sessionLimit !== l.sessionLimit || !sameCounters(p.totals!, l.totals!);
  });
  const pp = matcher(prev.pools, (p) => p.name);
  const pools: PoolStats[] = [];
  for (let i = 0; i < cur.pools.length; i++) {
    const pool = cur.pools[i]!;
    const p = pp(pool, i);
    if (p === pool) continue;
    if (!p) {
      pools.push(pool);
      continue;
    }
    const pm = matcher(p.members, (m) => m.memberId);
    const members = pool.members.filter((m, j) => {
      const o = pm(m, j);
      return o !== m && (!o || memberChanged(o, m));
    });
    if (members.length || p.status !== pool.status || p.currentSessions !== pool.currentSessions || !sameCounters(p.totals!, pool.totals!)) {
      pools.push({ ...pool, members });
    }
  }
  if (!listeners.length && !pools.length && prev.running === cur.running && prev.reloads === cur.reloads &&
    prev.currentConnections === cur.currentConnections) return undefined;
  return { ...cur, listeners, pools };
}

/** Status of every object of a load balancer, keyed. */
export function statusSignature(lb: LoadBalancerStats): Map<string, string> {
  const m = new Map<string, string>([["LB", lb.running ? "running" : "stopped"]]);
  for (const l of lb.listeners) m.set(`F:${l.listenerId}`, l.status);
  for (const p of lb.pools) {
    m.set(`B:${p.name}`, p.status);
    for (const s of p.members) m.set(`S:${p.name}/${s.memberId}`, `${s.status}/${s.weight}`);
  }
  return m;
}

/** The objects whose status differs from `prev`, without counters. */
export function statusDiff(prev: Map<string, string> | undefined, lb: LoadBalancerStats): LoadBalancerStats | undefined {
  const changed = (k: string, v: string) => !prev || prev.get(k) !== v;
  const listeners = lb.listeners
    .filter((l) => changed(`F:${l.listenerId}`, l.status))
    .map((l) => ({ ...l, totals: undefined, delta: undefined }));
  const pools: PoolStats[] = [];
  for (const p of lb.pools) {
    const members = p.members
      .filter((s) => changed(`S:${p.name}/${s.memberId}`, `${s.status}/${s.weight}`))
      .map((s) => ({ ...s, totals: undefined, delta: undefined }));
    if (members.length || changed(`B:${p.name}`, p.status)) pools.push({ ...p, totals: undefined, delta: undefined, members });
  }
  if (!listeners.length && !pools.length && !changed("LB", lb.running ? "running" : "stopped")) return undefined;
  return { ...lb, listeners, pools };
}

// ---- subscriptions ----

export class Subscription implements AsyncIterable<StatsUpdate> {
  private queue: Pending[] = [];
  private waiter: ((u: StatsUpdate | undefined) => void) | undefined;
  private readyWaiter: ((ready: boolean) => void) | undefined;
  private needFull = false;
  private missed = 0;
  private seq = 0;
  closed = false;
  /** Waiting for its first (complete) message. */
  firstPending = true;
  /**
   * The view (PollGroup.viewSeq) its last collapsed queue was answered
   * from: a sliced delivery of that same view skips this subscriber.
   */
  fullOf = -1;
  /** Load balancers this subscriber was told about (for removed_lb_ids). */
  readonly seen = new Set<string>();
  readonly filterKey: string;
  private lastSent = Date.now();
  private keepaliveTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly options: WatchOptions,
    private readonly group: PollGroup,
    private readonly onClose: (s: Subscription) => void,
  ) {
    const f = options.filter ?? {};
    this.filterKey = JSON.stringify([[...(f.lbIds ?? [])].sort(), [...(f.listenerIds ?? [])].sort()]);
    const k = options.keepaliveMs ?? 0;
    if (k > 0) {
      this.keepaliveTimer = setInterval(() => {
        if (Date.now() - this.lastSent >= k && !this.queued && !this.firstPending) {
          this.push({ loadBalancers: [], removedLbIds: [], collectedAt: new Date(), full: false, statusOnly: false });
        }
      }, Math.max(50, Math.floor(k / 2)));
      this.keepaliveTimer.unref();
    }
  }

  get queued(): number {
    return this.queue.length + (this.needFull ? 1 : 0);
  }

  private stamp(p: Pending, missed = 0): StatsUpdate {
    if (p.full) this.seen.clear();
    else for (const id of p.removedLbIds) this.seen.delete(id);
    for (const lb of p.loadBalancers) this.seen.add(lb.lbId);
    this.lastSent = Date.now();
    return {
      loadBalancers: p.loadBalancers, removedLbIds: p.removedLbIds, collectedAt: p.collectedAt, full: p.full,
      statusOnly: p.statusOnly, missedUpdates: missed, sequence: ++this.seq,
    };
  }

  /**
   * An empty message (what clients know as a keepalive) numbered in this
   * stream's sequence, for the transport to send now, outside the queue.
   */
  emptyNow(): StatsUpdate {
    return this.stamp({ loadBalancers: [], removedLbIds: [], collectedAt: new Date(), full: false, statusOnly: false });
  }

  /** Hands an update to the reader, queues it, or collapses the queue. */
  push(p: Pending): void {
    if (this.closed) return;
    if (this.waiter && !this.needFull && !this.queue.length) {
      const w = this.waiter;
      this.waiter = undefined;
      w(this.stamp(p));
      return;
    }
    if (this.needFull) {
      // Already collapsed: the snapshot built when the reader comes back
      // covers this update too.
      this.missed++;
    } else if (this.queue.length >= (this.options.queueLimit ?? (this.options.mode === "snapshots" ? 2 : 8))) {
      this.missed += this.queue.length + 1;
      this.queue = [];
      this.needFull = true;
    } else this.queue.push(p);
    const r = this.readyWaiter;
    this.readyWaiter = undefined;
    r?.(true);
  }

  /**
   * Resolves true once next() would answer at once (false when closed),
   * without taking anything: a reader that must wait for something else
   * (room to write) then takes the freshest update, not a stale one.
   */
  ready(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.needFull || this.queue.length) return Promise.resolve(true);
    return new Promise((r) => (this.readyWaiter = r));
  }

  /** What next() would return now (undefined if nothing is ready). */
  peek(): Pending | undefined {
    if (this.closed) return undefined;
    return this.needFull ? this.group.fullFor(this) : this.queue[0];
  }

  /** Whether take() would return an update now. */
  get hasReady(): boolean {
    return !this.closed && (this.needFull || this.queue.length > 0);
  }

  /** The next update if one is ready now, else undefined: next() without waiting. */
  take(): StatsUpdate | undefined {
    if (this.closed) return undefined;
    if (this.needFull) {
      this.needFull = false;
      const missed = this.missed;
      this.missed = 0;
      this.fullOf = this.group.viewSeq;
      return this.stamp(this.group.fullFor(this), missed);
    }
    const p = this.queue.shift();
    return p && this.stamp(p);
  }

  next(): Promise<StatsUpdate | undefined> {
    const u = this.take();
    if (u || this.closed) return Promise.resolve(u);
    return new Promise((r) => (this.waiter = r));
  }

  /** Idempotent; ends the iteration and frees the group if it was the last. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepaliveTimer);
    this.queue = [];
    const w = this.waiter;
    this.waiter = undefined;
    w?.(undefined);
    const r = this.readyWaiter;
    this.readyWaiter = undefined;
    r?.(false);
    this.onClose(this);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StatsUpdate> {
    try {
      for (;;) {
        const u = await this.next();
        if (!u) return;
        yield u;
      }
    } finally {
      this.close();
    }
  }
}

// ---- poll groups ----

/** Subscribers served per turn of the event loop when a tick is delivered. */
export const DELIVERY_SLICE = 64;
const NONE: string[] = [];

/** A tick's update on its way to the subscribers (see PollGroup.deliver). */
interface Delivery {
  subs: Subscription[];
  next: number;
  changes: LoadBalancerStats[];
  removed: string[];
  at: Date;
  seq: number;
  cache: Map<string, { full: LoadBalancerStats[]; changes: LoadBalancerStats[] }>;
}

class PollGroup {
  readonly subs = new Set<Subscription>();
  private readonly tracker = new DeltaTracker("zero");
  /** The latest tick's stats (with this group's deltas), in catalog order. */
  private view: LoadBalancerStats[] = [];
  private viewAt = new Date(0);
  private ready = false;
  /**
   * Statuses last sent to CHANGES subscribers, per load balancer: the
   * stats themselves after a tick (their signature is built only when a
   * collection between ticks needs it; 11,000 keys per tick otherwise).
   */
  private readonly statusSent = new Map<string, Map<string, string> | LoadBalancerStats>();
  private readonly collecting = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private nextAt = 0;
  /** Numbers the views: which one a complete snapshot was built from. */
  viewSeq = 0;
  private delivery: Delivery | undefined;
  /** See filteredView; cleared whenever the view changes. */
  private readonly fullLbs = new Map<string, LoadBalancerStats[]>();
  /** Subscribers in CHANGES mode: only they need statuses tracked. */
  private changesSubs = 0;
  stopped = false;
  ticks = 0;

  constructor(
    readonly intervalMs: number,
    private readonly collector: StatsCollector,
    private readonly logger: Logger,
    private readonly onTick: () => void = () => {},
  ) {
    this.nextAt = Date.now();
    this.schedule(0);
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => void this.tick(), delay);
    this.timer.unref();
  }

  remove(s: Subscription): void {
    if (this.subs.delete(s) && s.options.mode === "changes") this.changesSubs--;
  }

  /** Whether this group needs the status probe (CHANGES subscribers, long interval). */
  get wantsProbe(): boolean {
    return this.changesSubs > 0 && this.intervalMs > STATUS_PROBE_MS;
  }

  stop(): void {
    this.stopped = true;
    this.delivery = undefined;
    clearTimeout(this.timer);
  }

  add(s: Subscription): void {
    this.subs.add(s);
    if (s.options.mode === "changes" && this.changesSubs++ === 0) {
      // Statuses were not tracked without CHANGES subscribers: start from the last tick.
      this.statusSent.clear();
      for (const lb of this.view) this.statusSent.set(lb.lbId, lb);
    }
    // A group that has polled already answers at once from its last tick.
    if (this.ready && !this.ticking) {
      s.firstPending = false;
      s.push(this.fullFor(s));
    }
  }

  /**
   * The latest view through a subscriber's filter: one array per filter
   * (and so one encoding, see stats-service) for all subscribers that use
   * it, until the view changes.
   */
  private filteredView(s: Subscription): LoadBalancerStats[] {
    let a = this.fullLbs.get(s.filterKey);
    if (!a) this.fullLbs.set(s.filterKey, (a = filterStats(this.view, s.options.filter)));
    return a;
  }

  /** A complete snapshot of the latest tick for one subscriber. */
  fullFor(s: Subscription): Pending {
    const lbs = this.filteredView(s);
    const ids = new Set(lbs.map((l) => l.lbId));
    return { loadBalancers: lbs, removedLbIds: [...s.seen].filter((id) => !ids.has(id)), collectedAt: this.viewAt, full: true, statusOnly: false };
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    this.ticking = true;
    try {
      const refs = this.collector.select();
      this.onTick();
      for (const r of refs) this.collecting.add(r.lbId);
      let results: CollectedStats[];
      try {
        results = await this.collector.collectMany(refs);
      } finally {
        this.collecting.clear();
      }
      if (this.stopped) return;
      // Deleted while we polled: gone.
      results = results.filter((r) => this.collector.catalog.get(r.stats.lbId));
      // The previous tick's update reaches everyone before this one is built.
      this.finishDelivery();
      const stats = this.tracker.apply(results.map((r) => r.stats));

      const prevById = new Map(this.view.map((l) => [l.lbId, l]));
      const curIds = new Set(stats.map((l) => l.lbId));
      const removed = [...prevById.keys()].filter((id) => !curIds.has(id));
      const changes: LoadBalancerStats[] = [];
      // Only CHANGES subscribers read the diff (11,000 objects compared per
      // tick for a big load balancer); one that joins later starts with a
      // full snapshot and gets diffs from the tick after.
      if (this.changesSubs) {
        for (const lb of stats) {
          const d = diffLb(prevById.get(lb.lbId), lb);
          if (d) changes.push(d);
          this.statusSent.set(lb.lbId, lb);
        }
      }
      for (const id of removed) this.statusSent.delete(id);
      this.view = stats;
      this.viewSeq++;
      this.fullLbs.clear();
      this.viewAt = results.length ? new Date(Math.max(...results.map((r) => r.collectedAt.getTime()))) : new Date();
      this.ready = true;
      this.ticks++;
      this.deliver(changes, removed);
    } catch (e) {
      this.logger.error({ err: (e as Error).message, intervalMs: this.intervalMs }, "stats poll group tick failed");
    } finally {
      this.ticking = false;
      if (!this.stopped) {
        // Keep the cadence; skip ticks a slow poll overran.
        const now = Date.now();
        this.nextAt += this.intervalMs;
        if (this.nextAt <= now) this.nextAt = now + this.intervalMs - ((now - this.nextAt) % this.intervalMs);
        this.schedule(this.nextAt - now);
      }
    }
  }

  /**
   * Hands this tick's update to every subscriber, DELIVERY_SLICE at a time
   * with a turn of the event loop in between. Each subscriber's share of
   * the work (its stream serializes and writes the message) runs right
   * after its push; all 1,000 in one go kept the event loop busy for
   * ~80 ms and nothing reached the socket until the last was done. In
   * slices, the first subscribers' messages are on the wire (and being
   * read) while the next slice is prepared, and other calls get answered
   * between slices. Anything else that pushes to subscribers (a status
   * change, a deletion, the next tick) first completes the slices left.
   */
  private deliver(changes: LoadBalancerStats[], removed: string[]): void {
    this.finishDelivery();
    const all = [...this.subs];
    // A different first slice each tick: no subscriber is always served last.
    const off = all.length ? (this.ticks * DELIVERY_SLICE) % all.length : 0;
    const d: Delivery = {
      subs: off ? all.slice(off).concat(all.slice(0, off)) : all,
      next: 0, changes, removed, at: this.viewAt, seq: this.viewSeq, cache: new Map(),
    };
    this.delivery = d;
    this.deliverSlice(d);
  }

  private deliverSlice(d: Delivery): void {
    if (this.delivery !== d) return;
    const end = Math.min(d.subs.length, d.next + DELIVERY_SLICE);
    while (d.next < end) this.deliverTo(d, d.subs[d.next++]!);
    if (d.next < d.subs.length) setImmediate(() => this.deliverSlice(d));
    else this.delivery = undefined;
  }

  /** Serves the subscribers a sliced delivery has not reached yet, now. */
  private finishDelivery(): void {
    const d = this.delivery;
    if (!d) return;
    this.delivery = undefined;
    while (d.next < d.subs.length) this.deliverTo(d, d.subs[d.next++]!);
  }

  private deliverTo(d: Delivery, s: Subscription): void {
    // Gone, or already given a complete snapshot of this very tick (it read
    // a collapsed queue while its slice was waiting).
    if (s.closed || s.fullOf === d.seq) return;
    // Subscribers with the same filter share the filtered arrays (and so
    // their encoding, see stats-service).
    // (The view is still this tick's: whatever changes it first completes the delivery.)
    let c = d.cache.get(s.filterKey);
    if (!c) d.cache.set(s.filterKey, (c = { full: this.filteredView(s), changes: filterStats(d.changes, s.options.filter) }));
    const gone = d.removed.length ? d.removed.filter((id) => s.seen.has(id)) : NONE;
    if (s.firstPending || s.options.mode === "snapshots") {
      s.firstPending = false;
      s.push({ loadBalancers: c.full, removedLbIds: gone, collectedAt: d.at, full: true, statusOnly: false });
    } else if (c.changes.length || gone.length) {
      s.push({ loadBalancers: c.changes, removedLbIds: gone, collectedAt: d.at, full: false, statusOnly: false });
    }
  }

  /** Any collection of a load balancer (another group, the heartbeat, an event). */
  onCollected(c: CollectedStats): void {
    const lbId = c.stats.lbId;
    if (!this.changesSubs || !this.ready || this.collecting.has(lbId) || !this.collector.catalog.get(lbId)) return;
    // Statuses newer than the tick being delivered must not overtake it.
    this.finishDelivery();
    const sent = this.statusSent.get(lbId);
    const d = statusDiff(sent instanceof Map || !sent ? sent : statusSignature(sent), c.stats);
    if (!d) return;
    this.statusSent.set(lbId, statusSignature(c.stats));
    const update = [d];
    for (const s of this.subs) {
      if (s.firstPending || s.options.mode !== "changes") continue;
      const lbs = filterStats(update, s.options.filter);
      if (lbs.length) s.push({ loadBalancers: lbs, removedLbIds: [], collectedAt: c.collectedAt, full: false, statusOnly: true });
    }
  }

  onDeleted(lbId: string): void {
    this.finishDelivery();
    this.view = this.view.filter((l) => l.lbId !== lbId);
    this.fullLbs.clear();
    this.statusSent.delete(lbId);
    for (const s of this.subs) {
      // Also when it may sit in an update not read yet (seen is updated on read).
      if (s.seen.has(lbId) || (!s.firstPending && s.queued > 0)) {
        s.push({ loadBalancers: [], removedLbIds: [lbId], collectedAt: new Date(), full: false, statusOnly: true });
      }
    }
  }
}

export class WatchHub {
  private readonly groups = new Map<number, PollGroup>();
  /** Ticks of all poll groups so far (polls / ticks = LBs polled per tick). */
  ticks = 0;
  /** Status probes run so far (see STATUS_PROBE_MS). */
  probes = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly onLb = (e: LoadBalancerEvent) => this.handleLb(e);
  private readonly onCollected = (c: CollectedStats) => {
    for (const g of this.groups.values()) g.onCollected(c);
  };

  constructor(
    private readonly collector: StatsCollector,
    private readonly logger: Logger,
  ) {
    collector.on("lb", this.onLb);
    collector.on("collected", this.onCollected);
  }

  get subscriberCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.subs.size;
    return n;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  subscribe(o: WatchOptions): Subscription {
    if (this.closed) {
      // Shutting down: a stream that ends at once, and no poll group.
      const s = new Subscription({ ...o, keepaliveMs: 0 }, undefined as never, () => {});
      s.close();
      return s;
    }
    const intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.round(o.intervalMs)));
    let g = this.groups.get(intervalMs);
    if (!g) this.groups.set(intervalMs, (g = new PollGroup(intervalMs, this.collector, this.logger, () => this.ticks++)));
    const group = g;
    const s = new Subscription({ ...o, intervalMs }, group, (sub) => {
      group.remove(sub);
      // The last subscriber gone: stop polling for this interval.
      if (!group.subs.size && this.groups.get(intervalMs) === group) {
        group.stop();
        this.groups.delete(intervalMs);
      }
      this.updateProbe();
    });
    group.add(s);
    this.updateProbe();
    return s;
  }

  private updateProbe(): void {
    const want = !this.closed && [...this.groups.values()].some((g) => g.wantsProbe);
    if (want && !this.probeTimer) {
      this.probeTimer = setInterval(() => void this.probe(), STATUS_PROBE_MS);
      this.probeTimer.unref();
    } else if (!want && this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
  }

  /** Polls every load balancer; groups see status changes through "collected". */
  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    this.probes++;
    try {
      await this.collector.collectMany(this.collector.select());
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, "stats status probe failed");
    } finally {
      this.probing = false;
    }
  }

  private handleLb(e: LoadBalancerEvent): void {
    if (!this.groups.size) return;
    if (e.type === "deleted") {
      for (const g of this.groups.values()) g.onDeleted(e.lbId);
      return;
    }
    // Poll now so that watchers see the new status at once, not at the
    // next tick (one poll, whatever the number of groups).
    const ref = this.collector.catalog.get(e.lbId);
    if (ref) this.collector.collect(ref).catch((err) => this.logger.warn({ lbId: e.lbId, err: (err as Error).message }, "stats poll after event failed"));
  }

  private closed = false;

  /** Ends every stream (normally) and stops all polling; later subscriptions end at once. */
  close(): void {
    this.closed = true;
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.collector.off("lb", this.onLb);
    this.collector.off("collected", this.onCollected);
    for (const g of this.groups.values()) {
      g.stop();
      for (const s of [...g.subs]) s.close();
    }
    this.groups.clear();
  }
}
