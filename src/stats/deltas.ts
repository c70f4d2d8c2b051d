// Per-consumer deltas: each consumer (a poll group, the heartbeat, GetStats)
// keeps what it saw last and gets "what changed since my previous look".
// Totals only grow, so deltas are never negative.
import { matcher } from "./match.js";
import {
  NO_CHANGE, subCounters, zeroCounters, type Counters, type ListenerStats, type LoadBalancerStats, type MemberStats, type PoolStats,
} from "./model.js";

// Every field but delta: the same totals object means nothing was counted.
function sameListener(a: ListenerStats, b: ListenerStats): boolean {
  return a.totals === b.totals && a.listenerId === b.listenerId && a.status === b.status && a.rawStatus === b.rawStatus &&
    a.currentSessions === b.currentSessions && a.maxSessions === b.maxSessions && a.sessionLimit === b.sessionLimit;
}

function sameMember(a: MemberStats, b: MemberStats): boolean {
  return a.totals === b.totals && a.memberId === b.memberId && a.status === b.status && a.rawStatus === b.rawStatus &&
    a.weight === b.weight && a.currentSessions === b.currentSessions && a.maxSessions === b.maxSessions &&
    a.checkStatus === b.checkStatus && a.checkFailures === b.checkFailures && a.statusSince === b.statusSince;
}

function samePoolBesidesMembers(a: PoolStats, b: PoolStats): boolean {
  return a.totals === b.totals && a.name === b.name && a.poolId === b.poolId && a.listenerId === b.listenerId &&
    a.status === b.status && a.currentSessions === b.currentSessions;
}

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
      // An object that did not move since the previous look (same fields,
      // same totals object, and no delta then either) is handed out as the
      // previous copy itself, and consumers that compare two looks (the
      // CHANGES diff, the encoders' caches) see "unchanged" by identity.
      // Listeners, pools and members of a quiet load balancer are reused so
      // (a member's lastchg is its statusSince on the load balancer's
      // statusClock: it stays the same while lastchg counts up).
      let reused = before !== undefined && before.listeners.length === lb.listeners.length && before.pools.length === lb.pools.length;
      const listeners = lb.listeners.map((l, i): ListenerStats => {
        const p = pl(l, i);
        if (p && p.delta === NO_CHANGE && sameListener(p, l)) {
          if (p !== before!.listeners[i]) reused = false;
          return p;
        }
        reused = false;
        // Written out rather than spread: 11,000 objects per poll, and
        // literals give every consumer one object shape.
        return {
          listenerId: l.listenerId, status: l.status, rawStatus: l.rawStatus, currentSessions: l.currentSessions,
          maxSessions: l.maxSessions, sessionLimit: l.sessionLimit, totals: l.totals, delta: this.delta(l.totals, p),
        };
      });
      const pools = lb.pools.map((p, i): PoolStats => {
        const prevPool = pp(p, i);
        const pm = matcher(prevPool?.members ?? [], (m) => m.memberId);
        let same = prevPool !== undefined && prevPool.members.length === p.members.length;
        const members = p.members.map((m, j): MemberStats => {
          const o = pm(m, j);
          if (o && o.delta === NO_CHANGE && sameMember(o, m)) {
            if (o !== prevPool!.members[j]) same = false;
            return o;
          }
          same = false;
          return {
            memberId: m.memberId, status: m.status, rawStatus: m.rawStatus, weight: m.weight, currentSessions: m.currentSessions,
            maxSessions: m.maxSessions, totals: m.totals, delta: this.delta(m.totals, o), checkStatus: m.checkStatus,
            checkFailures: m.checkFailures, statusSince: m.statusSince,
          };
        });
        if (same && prevPool!.delta === NO_CHANGE && samePoolBesidesMembers(prevPool!, p)) {
          if (prevPool !== before!.pools[i]) reused = false;
          return prevPool!;
        }
        reused = false;
        return {
          name: p.name, poolId: p.poolId, listenerId: p.listenerId, status: p.status, currentSessions: p.currentSessions,
          totals: p.totals, delta: this.delta(p.totals, prevPool), members,
        };
      });
      const copy: LoadBalancerStats =
        reused && before!.running === lb.running && before!.reloads === lb.reloads && before!.currentConnections === lb.currentConnections &&
        before!.statusClock === lb.statusClock
          ? before!
          : { ...lb, listeners, pools };
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
