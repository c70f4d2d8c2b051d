// Turns raw haproxy counters (which restart with every new worker) into
// totals that only grow: when a reload is seen, the last values of the old
// worker are carried into a base that the new worker's counters add to.
import { cell, num, rowAt, rowCounters, type Columns, type RawLbStats } from "./haproxy-stats.js";
import { detach, LineMemo } from "./line-memo.js";
import {
  addCounters, anyCounterBelow, sameCounters, zeroCounters, type Counters, type ListenerStats, type ListenerStatus,
  type LoadBalancerStats, type MemberStats, type MemberStatus, type PoolStats, type PoolStatus,
} from "./model.js";

export function listenerStatus(raw: string): ListenerStatus {
  if (raw === "OPEN") return "OPEN";
  if (raw === "FULL") return "FULL";
  if (raw.startsWith("STOP")) return "STOPPED";
  return "UNKNOWN";
}

export function poolStatus(raw: string): PoolStatus {
  if (raw.startsWith("UP")) return "UP";
  if (raw.startsWith("DOWN")) return "DOWN";
  return "UNKNOWN";
}

/**
 * haproxy's server status ("UP", "UP 1/3", "DOWN 1/2", "MAINT (via x)",
 * "DRAIN", "NOLB", "no check") to a state and the word the heartbeat uses.
 * An UP server with weight 0 receives no new traffic: DRAIN.
 */
export function memberStatus(raw: string, weight: number): { status: MemberStatus; word: string } {
  if (raw.startsWith("MAINT")) return { status: "MAINT", word: "MAINT" };
  if (raw.startsWith("DRAIN") || raw === "NOLB") return { status: "DRAIN", word: "DRAIN" };
  if (raw.startsWith("DOWN")) return { status: "DOWN", word: "DOWN" };
  if (raw.startsWith("UP")) return weight === 0 ? { status: "DRAIN", word: "DRAIN" } : { status: "UP", word: "UP" };
  if (raw === "no check") return weight === 0 ? { status: "DRAIN", word: "DRAIN" } : { status: "NO_CHECK", word: "no check" };
  return { status: "UNKNOWN", word: raw };
}

/** Splits a backend name "<pool_id>:<listener_id>". */
export function splitPoolName(name: string): { poolId: string; listenerId: string } {
  const i = name.indexOf(":");
  return i < 0 ? { poolId: name, listenerId: "" } : { poolId: name.slice(0, i), listenerId: name.slice(i + 1) };
}

/**
 * What was built from one line of the previous poll: reused while the line
 * (lastchg aside) does not change and the worker is the same. Listeners are
 * handed out as the very same object; a pool gets a fresh object for its
 * fresh members array; a member is the same object while its lastchg moves
 * with the poll's status clock (see statusClockOf).
 */
type Built =
  | { kind: "listener"; l: ListenerStats }
  | { kind: "pool"; px: string; p: PoolStats }
  | { kind: "member"; px: string; m: MemberStats }
  | { kind: "other" };

export class LbAccumulator {
  private workerPid: string | undefined;
  private uptimeSec = 0;
  /**
   * Per object key, the current worker's raw counters and the totals handed
   * out at the last poll. While an object's raw counters do not move (most
   * objects of a big load balancer, most of the time), the same totals
   * object is handed out again: consumers then compare it by identity and
   * allocate nothing for it.
   */
  private readonly last = new Map<string, { raw: Counters; totals: Counters }>();
  /** Carried from earlier workers, per object key. */
  private readonly base = new Map<string, Counters>();
  /** Last totals per listener, reported while haproxy does not run. */
  private readonly listenerTotals = new Map<string, Counters>();
  /** The previous poll's lines (see Built); cleared when totals no longer follow from a line. */
  readonly memo = new LineMemo<Built>();
  reloads = 0;
  /** The status clock of the previous poll (see statusClockOf). */
  private clock = 0;

  constructor(readonly lbId: string) {}

  /**
   * This poll's status clock: a member's statusSince is `clock - lastchg`.
   * Any value gives every member its exact lastchg back (a member object is
   * reused only when `clock - lastchg` equals its statusSince, else made
   * anew with it). The value that lets most members be reused is the one
   * that keeps them where they were: taken from the first member line that
   * did not change besides lastchg (lastchg + its statusSince). A member
   * whose status flapped back within one interval could mislead it; that
   * costs one poll of fresh objects, never a wrong value.
   */
  private statusClockOf(t: RawLbStats["table"]): number {
    const d = t.data;
    for (let i = 0; i < t.starts.length; i++) {
      if (t.quoted.has(i)) continue;
      const s = t.starts[i]!;
      const e = t.ends[i]!;
      if (this.memo.stored(i)?.kind !== "member") continue;
      const b = this.memo.probe(i, d, s, e);
      if (b?.kind === "member") return this.memo.lastchg(d, s, e) + b.m.statusSince;
    }
    // No member line is as it was (first poll, new worker, every member
    // counted something): any clock will do.
    return this.clock;
  }

  /** The old worker's last counters become part of the base. */
  private carryAll(): void {
    for (const [k, { raw }] of this.last) this.base.set(k, addCounters(this.base.get(k) ?? zeroCounters(), raw));
    this.last.clear();
  }

  private totals(key: string, raw: Counters): Counters {
    const prev = this.last.get(key);
    if (!prev) {
      const b = this.base.get(key);
      const totals = b ? addCounters(b, raw) : raw;
      this.last.set(key, { raw, totals });
      return totals;
    }
    // Same worker, nothing counted since: the totals did not move.
    if (sameCounters(raw, prev.raw)) return prev.totals;
    // Same worker but a counter went down (e.g. "clear counters"): carry
    // what this object had counted so far.
    if (anyCounterBelow(raw, prev.raw)) this.base.set(key, addCounters(this.base.get(key) ?? zeroCounters(), prev.raw));
    const b = this.base.get(key);
    prev.raw = raw;
    prev.totals = b ? addCounters(b, raw) : raw;
    return prev.totals;
  }

  /**
   * Applies one poll. A new worker pid, or an uptime that went back, is a
   * reload (or restart) whatever the catalog said.
   */
  apply(raw: RawLbStats): LoadBalancerStats {
    const newWorker = this.workerPid !== undefined && (raw.workerPid !== this.workerPid || raw.uptimeSec < this.uptimeSec);
    if (newWorker) {
      this.carryAll();
      this.reloads++;
      // The same line from a new worker means other totals (base + raw).
      this.memo.clear();
    }
    this.workerPid = raw.workerPid;
    this.uptimeSec = raw.uptimeSec;

    const listeners: ListenerStats[] = [];
    const pools: PoolStats[] = [];
    const poolByName = new Map<string, PoolStats>();
    // Members wait for their pool (servers come before their backend row),
    // in two parallel arrays: no wrapper object per member per poll.
    const memberPools: string[] = [];
    const members: MemberStats[] = [];
    const t = raw.table;
    const c = t.columns;
    const memo = this.memo;
    const d = t.data;
    const n = t.starts.length;
    memo.begin(t.header, c.lastchg, n);
    const clock = (this.clock = this.statusClockOf(t));
    for (let i = 0; i < n; i++) {
      const s = t.starts[i]!;
      const e = t.ends[i]!;
      const quoted = t.quoted.has(i);
      let b = quoted ? undefined : memo.lookup(i, d, s, e);
      if (b) {
        if (b.kind === "listener") listeners.push(b.l);
        else if (b.kind === "pool") {
          const p: PoolStats = {
            name: b.p.name, poolId: b.p.poolId, listenerId: b.p.listenerId, status: b.p.status,
            currentSessions: b.p.currentSessions, totals: b.p.totals, members: [],
          };
          pools.push(p);
          poolByName.set(b.px, p);
        } else if (b.kind === "member") {
          const since = clock - memo.lastchg(d, s, e);
          let m = b.m;
          if (m.statusSince !== since) {
            m = {
              memberId: m.memberId, status: m.status, rawStatus: m.rawStatus, weight: m.weight, currentSessions: m.currentSessions,
              maxSessions: m.maxSessions, totals: m.totals, checkStatus: m.checkStatus, checkFailures: m.checkFailures,
              statusSince: since,
            };
            // The memo's own record (never handed out): updated in place.
            b.m = m;
          }
          memberPools.push(b.px);
          members.push(m);
        }
        continue;
      }
      const row = rowAt(t, i);
      const type = cell(row, c.type);
      // Kept in the objects built from this line (and the memo): a copy,
      // not a view of the decoded line (see detach).
      const px = detach(cell(row, c.pxname));
      if (type === "0") {
        const l = this.listener(px, row, c);
        listeners.push(l);
        b = { kind: "listener", l };
      } else if (type === "1") {
        const p = this.pool(px, row, c);
        pools.push(p);
        poolByName.set(px, p);
        b = { kind: "pool", px, p };
      } else if (type === "2") {
        const m = this.member(px, row, c, clock);
        memberPools.push(px);
        members.push(m);
        b = { kind: "member", px, m };
      } else b = { kind: "other" };
      if (quoted) memo.forget(i);
      else memo.store(i, d, s, e, b);
    }
    // Servers come before their backend row in the CSV.
    for (let i = 0; i < members.length; i++) poolByName.get(memberPools[i]!)?.members.push(members[i]!);
    for (const l of listeners) this.listenerTotals.set(l.listenerId, l.totals!);
    return { lbId: this.lbId, running: true, listeners, pools, reloads: this.reloads, currentConnections: raw.currentConnections, statusClock: clock };
  }

  /** What is known while haproxy does not run: listeners STOPPED, totals kept. */
  stopped(listenerIds: string[]): LoadBalancerStats {
    return {
      lbId: this.lbId,
      running: false,
      listeners: listenerIds.map((id) => ({
        listenerId: id, status: "STOPPED" as const, rawStatus: "STOP", currentSessions: 0, maxSessions: 0, sessionLimit: 0,
        totals: this.listenerTotals.get(id) ?? zeroCounters(),
      })),
      pools: [],
      reloads: this.reloads,
      currentConnections: 0,
      statusClock: this.clock,
    };
  }

  private listener(name: string, row: string[], c: Columns): ListenerStats {
    const raw = cell(row, c.status);
    return {
      listenerId: name,
      status: listenerStatus(raw),
      rawStatus: raw,
      currentSessions: num(row, c.scur),
      maxSessions: num(row, c.smax),
      sessionLimit: num(row, c.slim),
      totals: this.totals(`F:${name}`, rowCounters(row, c)),
    };
  }

  private pool(name: string, row: string[], c: Columns): PoolStats {
    return {
      name,
      ...splitPoolName(name),
      status: poolStatus(cell(row, c.status)),
      currentSessions: num(row, c.scur),
      totals: this.totals(`B:${name}`, rowCounters(row, c)),
      members: [],
    };
  }

  private member(px: string, row: string[], c: Columns, clock: number): MemberStats {
    const weight = num(row, c.weight);
    const svname = detach(cell(row, c.svname));
    const { status, word } = memberStatus(cell(row, c.status), weight);
    return {
      memberId: svname,
      status,
      rawStatus: word,
      weight,
      currentSessions: num(row, c.scur),
      maxSessions: num(row, c.smax),
      totals: this.totals(`S:${px}/${svname}`, rowCounters(row, c)),
      checkStatus: cell(row, c.check_status),
      checkFailures: num(row, c.chkfail),
      statusSince: clock - num(row, c.lastchg),
    };
  }
}
