// Stats as an async iterable that outlives the connection: once a stream
// is established, when the agent restarts or the network drops, it
// reconnects with backoff and carries on. A first connect that fails is an
// error like any other call's (nothing was ever reached to reconnect to).
// The agent's first message on every stream is a full snapshot, so a
// consumer that replaces its state on `full` stays consistent.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { WatchMode, StatsFilterSchema, type WatchStatsResponse } from "../gen/amphora/v1/stats_pb.js";
import { ErrorInfoSchema } from "../gen/amphora/v1/errors_pb.js";
import type { AmphoraClient } from "./client.js";
import { toAmphoraError, type AmphoraError } from "./errors.js";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.js";

export interface FollowStatsOptions {
  lbIds?: string[];
  listenerIds?: string[];
  /** Poll interval the agent uses (default 1000 ms, 100 ms .. 1 h). */
  intervalMs?: number;
  /** SNAPSHOTS (default): a full snapshot every interval; CHANGES: full first, then deltas. */
  mode?: WatchMode;
  /** Ends the iteration (normally, without an error). */
  signal?: AbortSignal;
  /** Backoff between reconnects (default 200 ms doubling to 5 s). */
  backoff?: BackoffOptions;
  /** Give up after this many consecutive failed connects (default: never). */
  maxReconnects?: number;
  /**
   * Also retry when the very first stream fails before its first message
   * (default false: that error is thrown at once, e.g. a wrong URL or an
   * agent that is down fails like any other call).
   */
  retryFirstConnect?: boolean;
  /**
   * Also yield the agent's keepalives (empty, not full: sent so an idle
   * stream is not closed). Default false: they carry no data.
   */
  keepalives?: boolean;
  /** Called when the stream broke and a reconnect is scheduled. */
  onReconnect?: (info: { attempt: number; delayMs: number; error: AmphoraError }) => void;
}

/**
 * Errors worth reconnecting after: the agent went away or the stream broke.
 * Answers of the agent (invalid filter, unimplemented...) and TLS failures
 * would fail again the same way, so they end the iteration.
 */
export function transient(e: AmphoraError): boolean {
  if (e.category === "tls") return false;
  return transientCode(e);
}

/**
 * Whether a follower whose stream was already established should connect
 * again after `e`. Besides transient errors: a connection closed without a
 * byte right after its TLS handshake, which the client reads as a refused
 * certificate (client.ts), but which a connection cut at that instant (a
 * proxy, a flapping network) looks exactly like. The same certificate was
 * accepted before, so a few more tries are worth it before giving up.
 */
export function worthReconnecting(e: AmphoraError, established: boolean, failures: number): boolean {
  if (transient(e)) return true;
  return established && failures < 5 && e.category === "tls" && /rejected the client certificate/.test(e.message);
}

/**
 * The pause before a follower's next connect: throws `error` once
 * `maxReconnects` is passed, tells `onReconnect`, and waits the backoff.
 * False when the caller's signal ended the wait (stop following).
 */
export async function pauseBeforeReconnect(
  failures: number,
  error: AmphoraError,
  o: { maxReconnects?: number; backoff?: BackoffOptions; signal?: AbortSignal },
  report: (delayMs: number) => void,
): Promise<boolean> {
  if (o.maxReconnects !== undefined && failures > o.maxReconnects) throw error;
  const delayMs = backoffDelay(failures, { initialMs: 200, maxMs: 5000, ...o.backoff });
  report(delayMs);
  try {
    await sleep(delayMs, o.signal);
    return true;
  } catch {
    return false;
  }
}

function transientCode(e: AmphoraError): boolean {
  if (e.findDetails(ErrorInfoSchema).length && e.code !== Code.Unavailable) return false;
  return [Code.Unavailable, Code.Aborted, Code.DeadlineExceeded, Code.Internal, Code.Unknown, Code.Canceled].includes(e.code);
}

/** An empty message the agent sends only to keep a quiet stream open. */
export function isKeepalive(m: WatchStatsResponse): boolean {
  return !m.full && !m.loadBalancers.length && !m.removedLbIds.length;
}

export async function* followStats(client: AmphoraClient, o: FollowStatsOptions = {}): AsyncGenerator<WatchStatsResponse, void, undefined> {
  const request = {
    filter: create(StatsFilterSchema, { lbIds: o.lbIds ?? [], listenerIds: o.listenerIds ?? [] }),
    intervalMs: o.intervalMs ?? 1000,
    mode: o.mode ?? WatchMode.SNAPSHOTS,
  };
  let failures = 0;
  // Whether a stream ever delivered a message: only then is there something to reconnect to.
  let established = false;
  while (!o.signal?.aborted && !client.closed) {
    // A controller per stream: leaving the loop (break, return, throw in the
    // consumer) must cancel the HTTP/2 stream, which `break` alone does not.
    const ac = new AbortController();
    const onAbort = () => ac.abort(o.signal!.reason);
    o.signal?.addEventListener("abort", onAbort, { once: true });
    let error: AmphoraError;
    try {
      for await (const msg of client.stats.watchStats(request, { signal: ac.signal, timeoutMs: 0 })) {
        failures = 0;
        established = true;
        if (!o.keepalives && isKeepalive(msg)) continue;
        yield msg;
      }
      // The agent ended the stream (shutting down): follow it to the next one.
      error = toAmphoraError(new ConnectError("the agent ended the stats stream", Code.Unavailable), { agent: client.baseUrl });
    } catch (e) {
      if (o.signal?.aborted) return;
      error = toAmphoraError(e, { agent: client.baseUrl });
      // Canceled by close() ends the iteration normally, as an abort does;
      // an agent shutting down cancels streams too, and that one is followed.
      if (error.code === Code.Canceled && client.closed) return;
      if (!worthReconnecting(error, established, failures)) throw error;
      if (!established && !o.retryFirstConnect) throw error;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
    failures++;
    if (!(await pauseBeforeReconnect(failures, error, o, (delayMs) => o.onReconnect?.({ attempt: failures, delayMs, error: error! })))) return;
  }
}
