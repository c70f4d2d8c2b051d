// Typed stats of the load balancers, independent of haproxy's CSV and of the
// wire contract. Counters are plain numbers: exact up to 2^53, far beyond
// what one amphora counts.

export interface Counters {
  totalSessions: number;
  bytesIn: number;
  bytesOut: number;
  requestErrors: number;
  connectionErrors: number;
  responseErrors: number;
  http1xx: number;
  http2xx: number;
  http3xx: number;
  http4xx: number;
  http5xx: number;
  httpOther: number;
  requests: number;
}

export const COUNTER_NAMES = [
  "totalSessions", "bytesIn", "bytesOut", "requestErrors", "connectionErrors", "responseErrors",
  "http1xx", "http2xx", "http3xx", "http4xx", "http5xx", "httpOther", "requests",
] as const satisfies readonly (keyof Counters)[];

export function zeroCounters(): Counters {
  return {
    totalSessions: 0, bytesIn: 0, bytesOut: 0, requestErrors: 0, connectionErrors: 0, responseErrors: 0,
    http1xx: 0, http2xx: 0, http3xx: 0, http4xx: 0, http5xx: 0, httpOther: 0, requests: 0,
  };
}

// Written out field by field: these run for every object of every poll
// (11,000 objects for a big load balancer), and keyed loops are ~5x slower.
export function addCounters(a: Counters, b: Counters): Counters {
  return {
    totalSessions: a.totalSessions + b.totalSessions, bytesIn: a.bytesIn + b.bytesIn, bytesOut: a.bytesOut + b.bytesOut,
    requestErrors: a.requestErrors + b.requestErrors, connectionErrors: a.connectionErrors + b.connectionErrors,
    responseErrors: a.responseErrors + b.responseErrors, http1xx: a.http1xx + b.http1xx, http2xx: a.http2xx + b.http2xx,
    http3xx: a.http3xx + b.http3xx, http4xx: a.http4xx + b.http4xx, http5xx: a.http5xx + b.http5xx,
    httpOther: a.httpOther + b.httpOther, requests: a.requests + b.requests,
  };
}

const pos = (n: number) => (n > 0 ? n : 0);

/** a - b per counter, clamped at zero (a delta is never negative). */
export function subCounters(a: Counters, b: Counters): Counters {
  return {
    totalSessions: pos(a.totalSessions - b.totalSessions), bytesIn: pos(a.bytesIn - b.bytesIn), bytesOut: pos(a.bytesOut - b.bytesOut),
    requestErrors: pos(a.requestErrors - b.requestErrors), connectionErrors: pos(a.connectionErrors - b.connectionErrors),
    responseErrors: pos(a.responseErrors - b.responseErrors), http1xx: pos(a.http1xx - b.http1xx), http2xx: pos(a.http2xx - b.http2xx),
    http3xx: pos(a.http3xx - b.http3xx), http4xx: pos(a.http4xx - b.http4xx), http5xx: pos(a.http5xx - b.http5xx),
    httpOther: pos(a.httpOther - b.httpOther), requests: pos(a.requests - b.requests),
  };
}

export function sameCounters(a: Counters, b: Counters): boolean {
  // The accumulator hands out the same totals object while nothing was
  // counted: most objects of a big load balancer compare by identity.
  if (a === b) return true;
  return a.totalSessions === b.totalSessions && a.bytesIn === b.bytesIn && a.bytesOut === b.bytesOut &&
    a.requestErrors === b.requestErrors && a.connectionErrors === b.connectionErrors && a.responseErrors === b.responseErrors &&
    a.http1xx === b.http1xx && a.http2xx === b.http2xx && a.http3xx === b.http3xx && a.http4xx === b.http4xx &&
    a.http5xx === b.http5xx && a.httpOther === b.httpOther && a.requests === b.requests;
}

/** Whether any counter of `a` is below the same counter of `b`. */
export function anyCounterBelow(a: Counters, b: Counters): boolean {
  return a.totalSessions < b.totalSessions || a.bytesIn < b.bytesIn || a.bytesOut < b.bytesOut ||
    a.requestErrors < b.requestErrors || a.connectionErrors < b.connectionErrors || a.responseErrors < b.responseErrors ||
    a.http1xx < b.http1xx || a.http2xx < b.http2xx || a.http3xx < b.http3xx || a.http4xx < b.http4xx ||
    a.http5xx < b.http5xx || a.httpOther < b.httpOther || a.requests < b.requests;
}

/**
 * The delta of an object whose totals did not move, shared (frozen: deltas
 * are read, never written, and a write would now throw instead of leaking).
 */
export const NO_CHANGE: Counters = Object.freeze(zeroCounters());

export type ListenerStatus = "OPEN" | "STOPPED" | "FULL" | "UNKNOWN";
export type PoolStatus = "UP" | "DOWN" | "UNKNOWN";
export type MemberStatus = "UP" | "DOWN" | "MAINT" | "DRAIN" | "NO_CHECK" | "UNKNOWN";

/**
 * `totals` and `delta` are absent only in a status-only update (a status
 * change sent between ticks); everywhere else they are set.
 */
export interface ListenerStats {
  listenerId: string;
  status: ListenerStatus;
  /** haproxy's own word (OPEN, FULL, STOP), for the heartbeat. */
  rawStatus: string;
  currentSessions: number;
  maxSessions: number;
  sessionLimit: number;
  totals?: Counters;
  delta?: Counters;
}

export interface MemberStats {
  memberId: string;
  status: MemberStatus;
  /** haproxy's status word, normalised (UP, DOWN, MAINT, DRAIN, no check). */
  rawStatus: string;
  weight: number;
  currentSessions: number;
  maxSessions: number;
  totals?: Counters;
  delta?: Counters;
  checkStatus: string;
  checkFailures: number;
  /**
   * Its last status change on its load balancer's `statusClock`: it was
   * `statusClock - statusSince` seconds ago (haproxy's lastchg, exactly;
   * see secondsSinceStatusChange). Not lastchg itself because that counts
   * up at every poll: every member would be a new object at every poll,
   * and deltas, diffs and encoders could not tell "unchanged" by identity.
   */
  statusSince: number;
}

export interface PoolStats {
  /** "<pool_id>:<listener_id>", the backend name. */
  name: string;
  poolId: string;
  listenerId: string;
  status: PoolStatus;
  currentSessions: number;
  totals?: Counters;
  delta?: Counters;
  members: MemberStats[];
}

export interface LoadBalancerStats {
  lbId: string;
  running: boolean;
  listeners: ListenerStats[];
  pools: PoolStats[];
  /** Reloads the agent saw (counters were carried across them). */
  reloads: number;
  currentConnections: number;
  /** Seconds, the reference of its members' `statusSince` (any origin: only differences mean something). */
  statusClock: number;
}

/** haproxy's lastchg of member `m` of load balancer `lb`: seconds since its last status change. */
export function secondsSinceStatusChange(lb: LoadBalancerStats, m: MemberStats): number {
  return lb.statusClock - m.statusSince;
}

export interface StatsFilter {
  lbIds?: string[];
  listenerIds?: string[];
}
