// Per-consumer deltas: each consumer (a poll group, the heartbeat, GetStats)
// keeps what it saw last and gets "what changed since my previous look".
// Totals only grow, so deltas are never negative.
import { matcher } from "./match.js";
import { NO_CHANGE, subCounters, zeroCounters, type Counters, type ListenerStats, type LoadBalancerStats, type MemberStats } from "./model.js";

export class DeltaTracker {
  /** The previous look, per load balancer (objects carry their totals). */
  private prev = new Map<string, LoadBalancerStats>();

  /**
   * @param unseen what the delta of an object seen for the first time is:
   *   "zero" (nothing known before it) or "totals" (all of it is new).
   */
  constructor(private readonly unseen: "zero" | "totals" = "zero") {}

  private delta(totals: Counters | undefined, prev: { totals?: Counters } | undefined): Counters | undefined {
    if (!totals) return undefined;
    // The accumulator hands out the same totals object while nothing moved.
    if (prev?.totals === totals) return NO_CHANGE;
    if (prev?.totals) return subCounters(totals, prev.totals);
    return this.unseen === "zero" ? zeroCounters() : totals;
  }

  /** Remembers the totals without producing deltas (a baseline). */
  prime(lbs: LoadBalancerStats[]): void {
    this.apply(lbs);
  }

  /**
   * Copies of the stats with `delta` filled in. Load balancers not in `lbs`
   * are forgotten, unless `keep` says they still exist (a look at part of
   * the load balancers must not reset the others' baselines).
   */
  apply(lbs: LoadBalancerStats[], keep?: (lbId: string) => boolean): LoadBalancerStats[] {
    const next = new Map<string, LoadBalancerStats>();
    if (keep) for (const [id, lb] of this.prev) if (keep(id)) next.set(id, lb);
    const out = lbs.map((lb) => {
      const before = this.prev.get(lb.lbId);
      const pl = matcher(before?.listeners ?? [], (l) => l.listenerId);
      const pp = matcher(before?.pools ?? [], (p) => p.name);
      const copy: LoadBalancerStats = {
        ...lb,
        // Written out rather than spread: 11,000 objects per poll, and
        // literals give every consumer one object shape.
        listeners: lb.listeners.map((l, i): ListenerStats => ({
          listenerId: l.listenerId, status: l.status, rawStatus: l.rawStatus, currentSessions: l.currentSessions,
          maxSessions: l.maxSessions, sessionLimit: l.sessionLimit, totals: l.totals, delta: this.delta(l.totals, pl(l, i)),
        })),
        pools: lb.pools.map((p, i) => {
          const prevPool = pp(p, i);
          const pm = matcher(prevPool?.members ?? [], (m) => m.memberId);
          return {
            ...p,
            delta: this.delta(p.totals, prevPool),
            members: p.members.map((m, j): MemberStats => ({
              memberId: m.memberId, status: m.status, rawStatus: m.rawStatus, weight: m.weight, currentSessions: m.currentSessions,
              maxSessions: m.maxSessions, totals: m.totals, delta: this.delta(m.totals, pm(m, j)), checkStatus: m.checkStatus,
              checkFailures: m.checkFailures, lastStatusChangeSeconds: m.lastStatusChangeSeconds,
            })),
          };
        }),
      };
      // A stopped LB reports listeners only: keep its pools' memory so
      // their deltas continue when it runs again.
      if (before && !copy.pools.length && before.pools.length) next.set(lb.lbId, { ...copy, pools: before.pools });
      else next.set(lb.lbId, copy);
      return copy;
    });
    this.prev = next;
    return out;
  }
}
