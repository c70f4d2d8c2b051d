// Protobuf binary encoding of amphora.v1.LoadBalancerStats written straight
// from the stats model, byte for byte what toBinary() gives for the message
// stats-service builds (a test compares the two). Why: building 11,000
// message objects (26 bigints per object) and letting toBinary walk the
// schema costs ~100 ms per snapshot of a 10,000-member load balancer, every
// tick. Here the parts that did not change since the previous tick are
// copied as bytes: an object's totals are the same object while nothing was
// counted (see LbAccumulator), so encodings are cached by that identity and
// checked against the other fields before use. Field numbers are those of
// proto/amphora/v1/stats.proto.
import { ListenerState, MemberState, PoolState } from "../gen/amphora/v1/stats_pb.js";
import { secondsSinceStatusChange, type Counters, type ListenerStats, type LoadBalancerStats, type MemberStats, type PoolStats } from "../stats/model.js";

export const LISTENER_STATE = { OPEN: ListenerState.OPEN, STOPPED: ListenerState.STOPPED, FULL: ListenerState.FULL, UNKNOWN: ListenerState.UNSPECIFIED };
export const POOL_STATE = { UP: PoolState.UP, DOWN: PoolState.DOWN, UNKNOWN: PoolState.UNSPECIFIED };
export const MEMBER_STATE = {
  UP: MemberState.UP, DOWN: MemberState.DOWN, MAINT: MemberState.MAINT, DRAIN: MemberState.DRAIN,
  NO_CHECK: MemberState.NO_CHECK, UNKNOWN: MemberState.UNSPECIFIED,
};

const VARINT = 0;
const LEN = 2;

// ---- sizes (proto3: zero scalars and empty strings are not written)

function varintLen(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let l = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) { l++; n = Math.floor(n / 0x80); }
  return l;
}

/** UTF-8 length (ids are ASCII: counted in JS, no call into C++). */
function utf8Len(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, "utf8");
  return s.length;
}

/** Field numbers here are all below 16: one tag byte. */
const numField = (n: number) => (n === 0 ? 0 : 1 + varintLen(n));
const lenField = (len: number) => 1 + varintLen(len) + len;
const strField = (s: string) => (s === "" ? 0 : lenField(utf8Len(s)));

// ---- writing

class Writer {
  readonly b: Buffer;
  p = 0;
  constructor(size: number) {
    this.b = Buffer.allocUnsafe(size);
  }
  tag(no: number, wt: number): void {
    this.b[this.p++] = (no << 3) | wt;
  }
  varint(n: number): void {
    const b = this.b;
    while (n >= 0x80000000) {
      // Above 31 bits: no bit operators.
      b[this.p++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    while (n > 0x7f) {
      b[this.p++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    b[this.p++] = n;
  }
  num(no: number, n: number): void {
    if (n === 0) return;
    this.tag(no, VARINT);
    this.varint(n);
  }
  str(no: number, s: string): void {
    if (s === "") return;
    const len = utf8Len(s);
    this.tag(no, LEN);
    this.varint(len);
    if (len === s.length) for (let i = 0; i < len; i++) this.b[this.p++] = s.charCodeAt(i);
    else this.p += this.b.write(s, this.p, "utf8");
  }
  bytes(no: number, v: Uint8Array): void {
    this.tag(no, LEN);
    this.varint(v.length);
    this.b.set(v, this.p);
    this.p += v.length;
  }
  done(): Buffer {
    if (this.p !== this.b.length) throw new Error(`stats encoding size mismatch: ${this.p} != ${this.b.length}`);
    return this.b;
  }
}

// ---- Counters (cached by object: totals objects live while they do not move)

const countersCache = new WeakMap<Counters, Buffer>();

function countersBody(c: Counters): Buffer {
  let e = countersCache.get(c);
  if (e) return e;
  const w = new Writer(
    numField(c.totalSessions) + numField(c.bytesIn) + numField(c.bytesOut) + numField(c.requestErrors) +
    numField(c.connectionErrors) + numField(c.responseErrors) + numField(c.http1xx) + numField(c.http2xx) +
    numField(c.http3xx) + numField(c.http4xx) + numField(c.http5xx) + numField(c.httpOther) + numField(c.requests),
  );
  w.num(1, c.totalSessions); w.num(2, c.bytesIn); w.num(3, c.bytesOut); w.num(4, c.requestErrors);
  w.num(5, c.connectionErrors); w.num(6, c.responseErrors); w.num(7, c.http1xx); w.num(8, c.http2xx);
  w.num(9, c.http3xx); w.num(10, c.http4xx); w.num(11, c.http5xx); w.num(12, c.httpOther); w.num(13, c.requests);
  e = w.done();
  countersCache.set(c, e);
  return e;
}

const countersField = (c: Counters | undefined) => (c ? lenField(countersBody(c).length) : 0);

// ---- objects: every field but the volatile ones, cached by totals identity

/** A cached encoding is used only if every field it was built from is the same. */
interface Cached<T> {
  of: T;
  bytes: Buffer;
}

const listenerCache = new WeakMap<Counters, Cached<ListenerStats>>();
const memberCache = new WeakMap<Counters, Cached<MemberStats>>();
const poolCache = new WeakMap<Counters, Cached<PoolStats>>();

function sameListener(a: ListenerStats, b: ListenerStats): boolean {
  return a === b || (a.listenerId === b.listenerId && a.status === b.status && a.currentSessions === b.currentSessions &&
    a.maxSessions === b.maxSessions && a.sessionLimit === b.sessionLimit && a.totals === b.totals && a.delta === b.delta);
}

/** Fields 1-9 (lastchg, field 10, moves every second: written apart). */
function sameMemberBut10(a: MemberStats, b: MemberStats): boolean {
  return a === b || (a.memberId === b.memberId && a.status === b.status && a.weight === b.weight &&
    a.currentSessions === b.currentSessions && a.maxSessions === b.maxSessions && a.totals === b.totals &&
    a.delta === b.delta && a.checkStatus === b.checkStatus && a.checkFailures === b.checkFailures);
}

/** Fields 1-7 (the members, field 8, are encoded each time). */
function samePoolBut8(a: PoolStats, b: PoolStats): boolean {
  return a === b || (a.name === b.name && a.poolId === b.poolId && a.listenerId === b.listenerId && a.status === b.status &&
    a.currentSessions === b.currentSessions && a.totals === b.totals && a.delta === b.delta);
}

function cached<T extends { totals?: Counters }>(cache: WeakMap<Counters, Cached<T>>, o: T, same: (a: T, b: T) => boolean,
  build: (o: T) => Buffer): Buffer {
  // Status-only objects carry no totals: nothing to key on, and rare.
  if (!o.totals) return build(o);
  const c = cache.get(o.totals);
  if (c && same(c.of, o)) return c.bytes;
  const bytes = build(o);
  cache.set(o.totals, { of: o, bytes });
  return bytes;
}

function listenerBody(l: ListenerStats): Buffer {
  const w = new Writer(strField(l.listenerId) + numField(LISTENER_STATE[l.status]) + numField(l.currentSessions) +
    numField(l.maxSessions) + numField(l.sessionLimit) + countersField(l.totals) + countersField(l.delta));
  w.str(1, l.listenerId);
  w.num(2, LISTENER_STATE[l.status]);
  w.num(3, l.currentSessions);
  w.num(4, l.maxSessions);
  w.num(5, l.sessionLimit);
  if (l.totals) w.bytes(6, countersBody(l.totals));
  if (l.delta) w.bytes(7, countersBody(l.delta));
  return w.done();
}

function memberHead(m: MemberStats): Buffer {
  const w = new Writer(strField(m.memberId) + numField(MEMBER_STATE[m.status]) + numField(m.weight) + numField(m.currentSessions) +
    numField(m.maxSessions) + countersField(m.totals) + countersField(m.delta) + strField(m.checkStatus) + numField(m.checkFailures));
  w.str(1, m.memberId);
  w.num(2, MEMBER_STATE[m.status]);
  w.num(3, m.weight);
  w.num(4, m.currentSessions);
  w.num(5, m.maxSessions);
  if (m.totals) w.bytes(6, countersBody(m.totals));
  if (m.delta) w.bytes(7, countersBody(m.delta));
  w.str(8, m.checkStatus);
  w.num(9, m.checkFailures);
  return w.done();
}

function poolHead(p: PoolStats): Buffer {
  const w = new Writer(strField(p.name) + strField(p.poolId) + strField(p.listenerId) + numField(POOL_STATE[p.status]) +
    numField(p.currentSessions) + countersField(p.totals) + countersField(p.delta));
  w.str(1, p.name);
  w.str(2, p.poolId);
  w.str(3, p.listenerId);
  w.num(4, POOL_STATE[p.status]);
  w.num(5, p.currentSessions);
  if (p.totals) w.bytes(6, countersBody(p.totals));
  if (p.delta) w.bytes(7, countersBody(p.delta));
  return w.done();
}

/**
 * The encoding of one LoadBalancerStats message. Sizes are computed first
 * (from the cached parts), then everything is written once into a buffer of
 * exactly that size. `lengthPrefixed` puts the length in front: the data of
 * a length-delimited field (what an enclosing message's unknown-field entry
 * holds: the tag is written by whoever writes that entry).
 */
export function encodeLoadBalancerStats(lb: LoadBalancerStats, lengthPrefixed = false): Buffer {
  const listeners = lb.listeners.map((l) => cached(listenerCache, l, sameListener, listenerBody));
  const poolHeads: Buffer[] = [];
  const memberHeads: Buffer[][] = [];
  const poolLens: number[] = [];
  let size = strField(lb.lbId) + (lb.running ? 2 : 0) + numField(lb.reloads) + numField(lb.currentConnections);
  for (const b of listeners) size += lenField(b.length);
  for (const p of lb.pools) {
    const head = cached(poolCache, p, samePoolBut8, poolHead);
    const heads = p.members.map((m) => cached(memberCache, m, sameMemberBut10, memberHead));
    let len = head.length;
    for (let i = 0; i < heads.length; i++) len += lenField(heads[i]!.length + numField(secondsSinceStatusChange(lb, p.members[i]!)));
    poolHeads.push(head);
    memberHeads.push(heads);
    poolLens.push(len);
    size += lenField(len);
  }
  const w = new Writer(lengthPrefixed ? varintLen(size) + size : size);
  if (lengthPrefixed) w.varint(size);
  w.str(1, lb.lbId);
  if (lb.running) {
    w.tag(2, VARINT);
    w.varint(1);
  }
  for (const b of listeners) w.bytes(3, b);
  for (let i = 0; i < lb.pools.length; i++) {
    const p = lb.pools[i]!;
    w.tag(4, LEN);
    w.varint(poolLens[i]!);
    const head = poolHeads[i]!;
    w.b.set(head, w.p);
    w.p += head.length;
    const heads = memberHeads[i]!;
    for (let j = 0; j < heads.length; j++) {
      const h = heads[j]!;
      const lastchg = secondsSinceStatusChange(lb, p.members[j]!);
      w.tag(8, LEN);
      w.varint(h.length + numField(lastchg));
      w.b.set(h, w.p);
      w.p += h.length;
      w.num(10, lastchg);
    }
  }
  w.num(5, lb.reloads);
  w.num(6, lb.currentConnections);
  return w.done();
}

/**
 * The fields of a WatchStatsResponse that differ from stream to stream
 * (removed_lb_ids = 2, missed_updates = 5, sequence = 6), encoded after
 * `reserve` bytes left free (an envelope prefix). The other fields are the
 * same for every stream of a tick and are encoded once (stats-service):
 * a message is these bytes and those, in either order.
 */
export function encodeStreamFields(removedLbIds: readonly string[], missedUpdates: number, sequence: number, reserve = 0): Buffer {
  let size = numField(missedUpdates) + numField(sequence);
  for (const id of removedLbIds) size += lenField(utf8Len(id));
  const w = new Writer(reserve + size);
  w.p = reserve;
  for (const id of removedLbIds) {
    if (id === "") {
      // proto3 writes every element of a repeated string, empty ones too.
      w.tag(2, LEN);
      w.varint(0);
    } else w.str(2, id);
  }
  w.num(5, missedUpdates);
  w.num(6, sequence);
  return w.done();
}
