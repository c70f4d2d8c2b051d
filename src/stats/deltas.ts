// Per-consumer deltas: each consumer (a poll group, the heartbeat) keeps the
// totals it saw last and gets "what changed since my previous look". Totals
// only grow, so deltas are never negative.
import { subCounters, zeroCounters, type Counters, type LoadBalancerStats } from "./model.js";

export class DeltaTracker {
  private prev = new Map<string, Counters>();

  /**
   * @param unseen what the delta of an object seen for the first time is:
   *   "zero" (nothing known before it) or "totals" (all of it is new).
   */
  constructor(private readonly unseen: "zero" | "totals" = "zero") {}

  private delta(key: string, totals: Counters | undefined, next: Map<string, Counters>): Counters | undefined {
    if (!totals) return undefined;
    next.set(key, totals);
    const p = this.prev.get(key);
    return p ? subCounters(totals, p) : this.unseen === "zero" ? zeroCounters() : totals;
  }

  /** Remembers the totals without producing deltas (a baseline). */
  prime(lbs: LoadBalancerStats[]): void {
    this.apply(lbs);
  }

  /** Copies of the stats with `delta` filled in; forgets objects not seen. */
  apply(lbs: LoadBalancerStats[]): LoadBalancerStats[] {
    const next = new Map<string, Counters>();
    const out = lbs.map((lb) => ({
      ...lb,
      listeners: lb.listeners.map((l) => ({ ...l, delta: this.delta(`${lb.lbId}|F:${l.listenerId}`, l.totals, next) })),
      pools: lb.pools.map((p) => ({
        ...p,
        delta: this.delta(`${lb.lbId}|B:${p.name}`, p.totals, next),
        members: p.members.map((m) => ({ ...m, delta: this.delta(`${lb.lbId}|S:${p.name}/${m.memberId}`, m.totals, next) })),
      })),
    }));
    this.prev = next;
    return out;
  }
}
