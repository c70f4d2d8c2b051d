// Tables of listeners, pools and members, for `amphora stats` (one snapshot)
// and `amphora watch` (a stream, with rates from consecutive snapshots).
import {
  ListenerState,
  MemberState,
  PoolState,
  type Counters,
  type LoadBalancerStats,
} from "../driver/index.js";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { formatAge, formatBytes, formatRate, paint, statusTint, table, type Style } from "./output.js";

const msOf = (t: Timestamp | undefined) => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0);

/** "totals since 2026-12-03T09:00:00.000Z (3m20s ago)", the line above a stats snapshot. */
export function totalsSinceLine(t: Timestamp | undefined, now = Date.now()): string {
  const at = msOf(t);
  return at ? `totals since ${new Date(at).toISOString()} (${formatAge(at, now)}, when the agent began counting)\n` : "";
}

export const listenerState = (s: ListenerState) => (ListenerState[s] ?? "UNSPECIFIED").replace(/^UNSPECIFIED$/, "UNKNOWN");
export const poolState = (s: PoolState) => (PoolState[s] ?? "UNSPECIFIED").replace(/^UNSPECIFIED$/, "UNKNOWN");
export const memberState = (s: MemberState) => (MemberState[s] ?? "UNSPECIFIED").replace(/^UNSPECIFIED$/, "UNKNOWN");

/** Per-second rates of one row, from the totals of two snapshots. */
export interface Rates {
  sessions: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
}

interface Sample {
  at: number;
  totals: Counters | undefined;
}

/** Remembers the previous totals of every row to turn counters into rates. */
export class RateTracker {
  private prev = new Map<string, Sample>();
  private next = new Map<string, Sample>();
  private since = 0;

  /**
   * The agent's totals_since of the snapshot about to be rendered: when it
   * changed, the agent restarted and its totals began again from zero, so
   * no rate is taken across it.
   */
  epoch(totalsSince: Timestamp | undefined): void {
    const at = msOf(totalsSince);
    if (at && this.since && at !== this.since) this.prev.clear();
    if (at) this.since = at;
  }

  rate(key: string, at: number, totals: Counters | undefined): Rates | undefined {
    this.next.set(key, { at, totals });
    const p = this.prev.get(key);
    if (!p || !p.totals || !totals || at <= p.at) return undefined;
    const dt = (at - p.at) / 1000;
    // Counters only grow (the agent carries them across reloads); a drop
    // means a new load balancer with the same id: no rate this time.
    const d = (a: bigint, b: bigint) => (a >= b ? Number(a - b) / dt : NaN);
    return {
      sessions: d(totals.totalSessions, p.totals.totalSessions),
      requests: d(totals.requests, p.totals.requests),
      bytesIn: d(totals.bytesIn, p.totals.bytesIn),
      bytesOut: d(totals.bytesOut, p.totals.bytesOut),
    };
  }

  /** Call after rendering a snapshot: its samples become the previous ones. */
  commit(): void {
    this.prev = this.next;
    this.next = new Map();
  }
}

const st = (s: string, style: Style) => paint(s, statusTint(s.replace("NO_CHECK", "NO CHECK")), style);
const n = (v: bigint | number | undefined) => String(v ?? 0);
const rateCell = (r: number | undefined, bytes = false) => (r === undefined || Number.isNaN(r) ? "-" : bytes ? `${formatBytes(r)}/s` : formatRate(r));

/** The three tables of a set of load balancers; with `rates`, per-second columns too. */
export function renderStats(lbs: LoadBalancerStats[], style: Style, rates?: { tracker: RateTracker; at: number }): string {
  if (!lbs.length) return "no load balancers\n";
  const r = (key: string, totals: Counters | undefined) => rates?.tracker.rate(key, rates.at, totals);
  const listeners: string[][] = [];
  const pools: string[][] = [];
  const members: string[][] = [];
  for (const lb of lbs) {
    for (const l of lb.listeners) {
      const rt = r(`l:${lb.lbId}:${l.listenerId}`, l.totals);
      listeners.push([
        l.listenerId,
        lb.lbId,
        st(listenerState(l.status), style),
        n(l.currentSessions),
        n(l.maxSessions),
        n(l.totals?.totalSessions),
        ...(rates ? [rateCell(rt?.sessions), rateCell(rt?.requests)] : [n(l.totals?.requests)]),
        ...(rates ? [rateCell(rt?.bytesIn, true), rateCell(rt?.bytesOut, true)] : [formatBytes(Number(l.totals?.bytesIn ?? 0n)), formatBytes(Number(l.totals?.bytesOut ?? 0n))]),
        n(l.totals?.requestErrors),
      ]);
    }
    for (const p of lb.pools) {
      const rt = r(`p:${lb.lbId}:${p.name}`, p.totals);
      pools.push([
        p.poolId || p.name,
        p.listenerId,
        st(poolState(p.status), style),
        n(p.currentSessions),
        n(p.totals?.totalSessions),
        ...(rates ? [rateCell(rt?.sessions)] : []),
        `${p.members.filter((m) => m.status === MemberState.UP || m.status === MemberState.NO_CHECK).length}/${p.members.length}`,
      ]);
      for (const m of p.members) {
        const mr = r(`m:${lb.lbId}:${p.name}:${m.memberId}`, m.totals);
        members.push([
          m.memberId,
          p.poolId || p.name,
          st(memberState(m.status), style),
          n(m.weight),
          n(m.currentSessions),
          n(m.totals?.totalSessions),
          ...(rates ? [rateCell(mr?.sessions)] : []),
          m.checkStatus || "-",
          n(m.checkFailures),
        ]);
      }
    }
  }
  const parts: string[] = [];
  const stopped = lbs.filter((lb) => !lb.running).map((lb) => lb.lbId);
  if (stopped.length) parts.push(paint(`not running: ${stopped.join(", ")}`, "yellow", style) + "\n");
  parts.push(
    table(
      ["LISTENER", "LB", "STATUS", "CUR", "MAX", "SESSIONS", ...(rates ? ["SESS/S", "REQ/S", "IN/S", "OUT/S"] : ["REQUESTS", "IN", "OUT"]), "REQ_ERR"],
      listeners, style, rates ? [3, 4, 5, 6, 7, 8, 9, 10] : [3, 4, 5, 6, 7, 8, 9]) || "no listeners\n",
  );
  if (pools.length) parts.push(table(["POOL", "LISTENER", "STATUS", "CUR", "SESSIONS", ...(rates ? ["SESS/S"] : []), "UP"], pools, style, rates ? [3, 4, 5] : [3, 4]));
  if (members.length) parts.push(table(["MEMBER", "POOL", "STATUS", "WEIGHT", "CUR", "SESSIONS", ...(rates ? ["SESS/S"] : []), "CHECK", "FAILS"], members, style, rates ? [3, 4, 5, 6, 8] : [3, 4, 5, 7]));
  return parts.join("\n");
}

/** One line per listener, pool and member: what `watch` prints when stdout is not a terminal. */
export function statsLines(lbs: LoadBalancerStats[], time: string, tracker: RateTracker, at: number): string[] {
  const out: string[] = [];
  const rate = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "-" : formatRate(v));
  for (const lb of lbs) {
    // new_workers: LoadBalancerStats.reloads, the new haproxy workers the agent
    // carried totals across; "reloads" is haproxy's own counter (lb list).
    out.push(`${time} lb ${lb.lbId} running=${lb.running} connections=${n(lb.currentConnections)} new_workers=${n(lb.reloads)}`);
    for (const l of lb.listeners) {
      const rt = tracker.rate(`l:${lb.lbId}:${l.listenerId}`, at, l.totals);
      out.push(
        `${time} listener ${l.listenerId} lb=${lb.lbId} status=${listenerState(l.status)} cur=${n(l.currentSessions)} sessions=${n(l.totals?.totalSessions)} ` +
          `sess_rate=${rate(rt?.sessions)} req_rate=${rate(rt?.requests)} in_rate=${rate(rt?.bytesIn)} out_rate=${rate(rt?.bytesOut)}`,
      );
    }
    for (const p of lb.pools) {
      out.push(`${time} pool ${p.poolId || p.name} listener=${p.listenerId} status=${poolState(p.status)} cur=${n(p.currentSessions)} sessions=${n(p.totals?.totalSessions)}`);
      for (const m of p.members) {
        const rt = tracker.rate(`m:${lb.lbId}:${p.name}:${m.memberId}`, at, m.totals);
        out.push(
          `${time} member ${m.memberId} pool=${p.poolId || p.name} status=${memberState(m.status)} weight=${m.weight} cur=${n(m.currentSessions)} ` +
            `sessions=${n(m.totals?.totalSessions)} sess_rate=${rate(rt?.sessions)} check=${m.checkStatus || "-"}`,
        );
      }
    }
  }
  return out;
}
