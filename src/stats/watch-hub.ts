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
  const pl = matcher(prev.listeners, (l) => l.listenerId);
  const listeners = cur.listeners.filter((l, i) => {
    const p = pl(l, i);
    return !p || p.status !== l.status || p.currentSessions !== l.currentSessions || p.maxSessions !== l.maxSessions ||
      p.sessionLimit !== l.sessionLimit || !sameCounters(p.totals!, l.totals!);
  });
  const pp = matcher(prev.pools, (p) => p.name);
  const pools: PoolStats[] = [];
  for (let i = 0; i < cur.pools.length; i++) {
    const pool = cur.pools[i]!;
    const p = pp(pool, i);
    if (!p) {
      pools.push(pool);
      continue;
    }
    const pm = matcher(p.members, (m) => m.memberId);
    const members = pool.members.filter((m, j) => {
      const o = pm(m, j);
      return !o || memberChanged(o, m);
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
    return { ...p, missedUpdates: missed, sequence: ++this.seq };
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

  next(): Promise<StatsUpdate | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    if (this.needFull) {
      this.needFull = false;
      const missed = this.missed;
      this.missed = 0;
      return Promise.resolve(this.stamp(this.group.fullFor(this), missed));
    }
    const p = this.queue.shift();
    if (p) return Promise.resolve(this.stamp(p));
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

  /** A complete snapshot of the latest tick for one subscriber. */
  fullFor(s: Subscription): Pending {
    const lbs = filterStats(this.view, s.options.filter);
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

  private deliver(changes: LoadBalancerStats[], removed: string[]): void {
    // Subscribers with the same filter share the filtered arrays.
    const cache = new Map<string, { full: LoadBalancerStats[]; changes: LoadBalancerStats[] }>();
    for (const s of this.subs) {
      let c = cache.get(s.filterKey);
      if (!c) cache.set(s.filterKey, (c = { full: filterStats(this.view, s.options.filter), changes: filterStats(changes, s.options.filter) }));
      const gone = removed.filter((id) => s.seen.has(id));
      if (s.firstPending || s.options.mode === "snapshots") {
        s.firstPending = false;
        s.push({ loadBalancers: c.full, removedLbIds: gone, collectedAt: this.viewAt, full: true, statusOnly: false });
      } else if (c.changes.length || gone.length) {
        s.push({ loadBalancers: c.changes, removedLbIds: gone, collectedAt: this.viewAt, full: false, statusOnly: false });
      }
    }
  }

  /** Any collection of a load balancer (another group, the heartbeat, an event). */
  onCollected(c: CollectedStats): void {
    const lbId = c.stats.lbId;
    if (!this.changesSubs || !this.ready || this.collecting.has(lbId) || !this.collector.catalog.get(lbId)) return;
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
    this.view = this.view.filter((l) => l.lbId !== lbId);
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
