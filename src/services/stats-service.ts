// StatsService: GetStats polls now; WatchStats subscribes to the shared
// poll group of its interval. Pure mapping between the stats module's types
// and the contract's messages.
import { toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  StatsService, WatchMode,
  type Counters as PbCounters, type LoadBalancerStats as PbLoadBalancerStats, type ListenerStats, type MemberStats,
  type PoolStats, type WatchStatsResponse, WatchStatsResponseSchema,
} from "../gen/amphora/v1/stats_pb.js";
import { secondsSinceStatusChange, type Counters, type LoadBalancerStats, type StatsFilter } from "../stats/model.js";
import type { Monitoring } from "../metrics/monitoring.js";
import { protocolKey } from "../transport/interceptors.js";
import { directStream } from "../transport/direct-stream.js";
import { filterStats, type StatsUpdate } from "../stats/watch-hub.js";
import { encodeLoadBalancerStats, encodeStreamFields, LISTENER_STATE, MEMBER_STATE, POOL_STATE } from "./stats-wire.js";

// Messages are built as plain objects (all fields set, as create() would
// leave them): create() walks the schema for every field, which costs
// ~100 ms for a load balancer with 10,000 members.
function counters(c: Counters | undefined): PbCounters | undefined {
  if (!c) return undefined;
  return {
    $typeName: "amphora.v1.Counters",
    totalSessions: BigInt(c.totalSessions), bytesIn: BigInt(c.bytesIn), bytesOut: BigInt(c.bytesOut),
    requestErrors: BigInt(c.requestErrors), connectionErrors: BigInt(c.connectionErrors), responseErrors: BigInt(c.responseErrors),
    http1xx: BigInt(c.http1xx), http2xx: BigInt(c.http2xx), http3xx: BigInt(c.http3xx), http4xx: BigInt(c.http4xx),
    http5xx: BigInt(c.http5xx), httpOther: BigInt(c.httpOther), requests: BigInt(c.requests),
  };
}

// Subscribers with the same filter receive the very same stats objects:
// map each once, not once per stream.
const mapped = new WeakMap<LoadBalancerStats, PbLoadBalancerStats>();

export function lbToProto(lb: LoadBalancerStats): PbLoadBalancerStats {
  let m = mapped.get(lb);
  if (m) return m;
  m = buildLb(lb);
  mapped.set(lb, m);
  return m;
}

function buildLb(lb: LoadBalancerStats): PbLoadBalancerStats {
  const listeners: ListenerStats[] = lb.listeners.map((l) => ({
    $typeName: "amphora.v1.ListenerStats",
    listenerId: l.listenerId, status: LISTENER_STATE[l.status], currentSessions: BigInt(l.currentSessions),
    maxSessions: BigInt(l.maxSessions), sessionLimit: BigInt(l.sessionLimit), totals: counters(l.totals), delta: counters(l.delta),
  }));
  const pools: PoolStats[] = lb.pools.map((p) => ({
    $typeName: "amphora.v1.PoolStats",
    name: p.name, poolId: p.poolId, listenerId: p.listenerId, status: POOL_STATE[p.status],
    currentSessions: BigInt(p.currentSessions), totals: counters(p.totals), delta: counters(p.delta),
    members: p.members.map((s): MemberStats => ({
      $typeName: "amphora.v1.MemberStats",
      memberId: s.memberId, status: MEMBER_STATE[s.status], weight: s.weight, currentSessions: BigInt(s.currentSessions),
      maxSessions: BigInt(s.maxSessions), totals: counters(s.totals), delta: counters(s.delta), checkStatus: s.checkStatus,
      checkFailures: BigInt(s.checkFailures), lastStatusChangeSeconds: BigInt(secondsSinceStatusChange(lb, s)),
    })),
  }));
  return {
    $typeName: "amphora.v1.LoadBalancerStats",
    lbId: lb.lbId, running: lb.running, reloads: BigInt(lb.reloads), currentConnections: BigInt(lb.currentConnections),
    listeners, pools,
  };
}

function filterOf(f: { lbIds: string[]; listenerIds: string[] } | undefined): StatsFilter {
  return { lbIds: f?.lbIds.map((s) => s.toLowerCase()) ?? [], listenerIds: f?.listenerIds.map((s) => s.toLowerCase()) ?? [] };
}

// The bytes of field 1 (load_balancers) for one load balancer: length
// prefix + message. Encoded once, then copied into every binary stream that
// carries it: 1,000 subscribers of a 10,000-member load balancer would
// otherwise encode the same 700 KB 1,000 times per interval.
const encoded = new WeakMap<LoadBalancerStats, Uint8Array>();

function lbField(lb: LoadBalancerStats): Uint8Array {
  let e = encoded.get(lb);
  if (!e) {
    // Straight from the stats model (see stats-wire.ts), not via proto
    // objects: queued updates keep their stats objects alive, and only the
    // bytes are needed from here on.
    e = encodeLoadBalancerStats(lb, true);
    encoded.set(lb, e);
  }
  return e;
}

/**
 * The fields of an update that are the same for every subscriber it goes
 * to (load balancers, collected_at, full, status_only, totals_since),
 * encoded once. Subscribers with the same filter are handed the very same
 * load-balancer array for a tick (see WatchHub), so 1,000 such streams
 * cost one encoding, and each stream adds only its own fields (sequence,
 * missed_updates, removed_lb_ids). Keyed by that array; the other shared
 * values are checked, so an array met with other values is encoded anew.
 */
interface SharedFields {
  at: number;
  full: boolean;
  statusOnly: boolean;
  since: number;
  /** All of it as one unknown-field entry (see updateToProto); undefined if empty. */
  entry: { no: number; wireType: WireType; data: Uint8Array } | undefined;
  /** All of it as bytes (written as they are by the direct path). */
  bytes: Uint8Array;
  size: number;
}

const shared = new WeakMap<LoadBalancerStats[], SharedFields>();

function sharedFields(u: Omit<StatsUpdate, "missedUpdates" | "sequence">, totalsSince: Date | undefined): SharedFields {
  const at = u.collectedAt.getTime();
  const since = totalsSince ? totalsSince.getTime() : -1;
  let f = shared.get(u.loadBalancers);
  if (f && f.at === at && f.full === u.full && f.statusOnly === u.statusOnly && f.since === since) return f;
  const bytes = toBinary(WatchStatsResponseSchema, {
    $typeName: "amphora.v1.WatchStatsResponse",
    loadBalancers: [], removedLbIds: [], collectedAt: timestampFromDate(u.collectedAt), full: u.full, missedUpdates: 0n,
    sequence: 0n, statusOnly: u.statusOnly, totalsSince: totalsSince && timestampFromDate(totalsSince),
    $unknown: u.loadBalancers.map((lb) => ({ no: 1, wireType: WireType.LengthDelimited, data: lbField(lb) })),
  });
  let entry: SharedFields["entry"];
  if (bytes.length) {
    // toBinary writes an unknown entry as its tag, then its data as is: the
    // first field's tag, then everything after it, gives back all the bytes.
    const r = new BinaryReader(bytes);
    const [no, wireType] = r.tag();
    entry = { no, wireType, data: bytes.subarray(r.pos) };
  }
  f = { at, full: u.full, statusOnly: u.statusOnly, since, entry, bytes, size: bytes.length };
  shared.set(u.loadBalancers, f);
  return f;
}

const NO_UNKNOWN: [] = [];

/**
 * An update as the bytes of one message for the direct path: the stream's
 * own fields, then the fields shared by every stream of the tick, not
 * copied (1,000 streams of a tick write the same shared bytes).
 */
function streamParts(u: StatsUpdate, totalsSince: Date): Uint8Array[] {
  const own = encodeStreamFields(u.removedLbIds, u.missedUpdates, u.sequence);
  const shared = sharedFields(u, totalsSince).bytes;
  return shared.length ? [own, shared] : [own];
}

/**
 * @param shareEncoding binary protocols only: everything but the stream's
 *   own fields travels as the shared pre-encoded bytes ($unknown is written
 *   as is by toBinary; a protobuf decoder reads fields in any order). JSON
 *   ignores $unknown, so JSON streams get ordinary messages.
 */
function updateToProto(u: StatsUpdate, shareEncoding: boolean, totalsSince?: Date): WatchStatsResponse {
  if (shareEncoding) {
    const entry = sharedFields(u, totalsSince).entry;
    return {
      $typeName: "amphora.v1.WatchStatsResponse",
      loadBalancers: [], removedLbIds: u.removedLbIds, collectedAt: undefined, full: false,
      missedUpdates: BigInt(u.missedUpdates), sequence: BigInt(u.sequence), statusOnly: false, totalsSince: undefined,
      $unknown: entry ? [entry] : NO_UNKNOWN,
    };
  }
  return {
    $typeName: "amphora.v1.WatchStatsResponse",
    loadBalancers: u.loadBalancers.map(lbToProto),
    removedLbIds: u.removedLbIds,
    collectedAt: timestampFromDate(u.collectedAt),
    full: u.full,
    missedUpdates: BigInt(u.missedUpdates),
    sequence: BigInt(u.sequence),
    statusOnly: u.statusOnly,
    totalsSince: totalsSince && timestampFromDate(totalsSince),
  };
}

/** Messages at least this big are followed by an empty one (see watchStats). */
export const RELEASE_AFTER_BYTES = 64 * 1024;

/** Bytes a message will take (binary; JSON is larger but proportional). */
function sizeOf(u: Omit<StatsUpdate, "missedUpdates" | "sequence"> | undefined, totalsSince: Date | undefined): number {
  return u ? 32 + sharedFields(u, totalsSince).size : 64;
}

/** True when the call's messages are protobuf binary (gRPC, gRPC-Web, Connect proto). */
export function isBinaryCall(contentType: string | null, protocol: string): boolean {
  if (protocol === "rest") return false;
  return /^application\/(grpc(-web)?(\+proto)?|connect\+proto|proto)\s*(;|$)/.test(contentType ?? "");
}

export function statsService(m: Monitoring): Partial<ServiceImpl<typeof StatsService>> {
  return {
    async getStats(req) {
      const filter = filterOf(req.filter);
      const collected = await m.collector.collectMany(m.collector.select(filter));
      // Deltas since the previous GetStats (of any caller); a filtered call
      // keeps the baselines of the load balancers it did not look at.
      const stats = m.getStatsDeltas.apply(collected.map((c) => c.stats), (id) => m.collector.catalog.get(id) !== undefined);
      const at = collected.length ? new Date(Math.max(...collected.map((c) => c.collectedAt.getTime()))) : new Date();
      return { loadBalancers: filterStats(stats, filter).map(lbToProto), collectedAt: timestampFromDate(at), totalsSince: timestampFromDate(m.collector.totalsSince) };
    },
    async *watchStats(req, ctx) {
      // A call can start already aborted (a deadline of 0 ms): its signal
      // will never fire "abort", so end it now with its reason.
      ctx.signal.throwIfAborted();
      const sub = m.hub.subscribe({
        intervalMs: req.intervalMs,
        filter: filterOf(req.filter),
        mode: req.mode === WatchMode.CHANGES ? "changes" : "snapshots",
        keepaliveMs: m.keepaliveMs(),
      });
      // Cancellation (client gone, deadline, shutdown) ends the subscription
      // and, with the last one, the poll group.
      const onAbort = () => sub.close();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        const binary = isBinaryCall(ctx.requestHeader.get("content-type"), ctx.values.get(protocolKey));
        const since = m.collector.totalsSince;
        // Binary streams: after connect has written the first message (and
        // the headers), the next ones are written straight to the response
        // (see transport/direct-stream.ts): ~25 instead of ~65 µs per
        // stream and tick, and no pending pipeline steps kept per stream.
        const direct = binary ? directStream(ctx) : undefined;
        let directOk = false;
        // Wait for an update, then for room to write it, and only then
        // take it: while this stream waits for room, its queue collapses
        // into the freshest snapshot instead of going stale. Each step goes
        // through a promise only when it has to wait: at a tick, 1,000
        // streams run this loop one after the other.
        while (sub.hasReady || (await sub.ready())) {
          const reserved = sizeOf(sub.peek(), since);
          if (!m.streamBudget.tryAcquire(reserved)) await m.streamBudget.acquire(reserved, ctx.signal);
          const u = sub.take();
          if (!u) {
            m.streamBudget.release(reserved);
            break;
          }
          const size = sizeOf(u, since);
          if (size > reserved) m.streamBudget.force(size - reserved);
          else m.streamBudget.release(reserved - size);
          const viaConnect = !direct || !directOk;
          // Held while the transport writes this message (it asks for the
          // next one only once the client took it).
          try {
            if (viaConnect) yield updateToProto(u, binary, since);
            else if (!(await direct.write(streamParts(u, since), ctx.signal))) break;
          } finally {
            m.streamBudget.release(size);
          }
          // connect's response pipeline keeps the last message's serialized
          // bytes referenced (a copy in each stage's generator frame) until
          // the next message passes through: a stream waiting for its next
          // snapshot of a big load balancer held ~1.4 MB, 1.3 GB for 1,000
          // streams. A small message after a big one releases them; it is
          // the empty message clients already take as a keepalive.
          if (viaConnect) {
            if (size >= RELEASE_AFTER_BYTES && !sub.closed) yield updateToProto(sub.emptyNow(), binary);
            // What connect holds now is small; the next messages go past it
            // (which keeps nothing), if this call can.
            directOk = direct !== undefined;
          }
        }
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        sub.close();
      }
    },
  };
}

/** Internals for tests. */
export const testing = { updateToProto, streamParts };
