// The agent's events as an async iterable that survives dropped
// connections without losing or repeating any: it remembers the last
// (epoch, seq) it handed out and resumes after it on every reconnect.
// When the agent can no longer serve that resume point (it restarted: a
// new epoch; or the events were evicted from its ring), the iteration yields
// one `resync` item and carries on live: the caller re-reads whatever state
// it keeps (load balancer statuses, VRRP state...) and applies the events
// that follow.
import { Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { EventFilterSchema, type Event, type EventKind } from "../gen/amphora/v1/events_pb.js";
import type { AmphoraClient } from "./client.js";
import { toAmphoraError, type AmphoraError } from "./errors.js";
import type { BackoffOptions } from "./backoff.js";
import { pauseBeforeReconnect, worthReconnecting } from "./follow-stats.js";
import { ConnectError } from "@connectrpc/connect";

/** Where a follower stands: every event up to `seq` of `epoch` (that passes its filter) was handed out. */
export interface EventPosition {
  epoch: string;
  seq: bigint;
}

export type FollowedEvent =
  | { type: "event"; event: Event }
  /**
   * Events may have been missed: the agent restarted (EPOCH_CHANGED) or
   * dropped them from its ring (EVENTS_EVICTED). Re-read the state; the
   * items after this one are live events from the agent's current epoch.
   */
  | { type: "resync"; reason: string; from?: EventPosition; error: AmphoraError }
  /** With `keepalives`: the position advanced without an event (a filtered stream). */
  | { type: "keepalive"; position: EventPosition };

export interface FollowEventsOptions {
  kinds?: EventKind[];
  lbIds?: string[];
  /**
   * Resume after this event (e.g. a position saved by a previous run);
   * absent = live from now. An empty epoch means the agent's current one.
   */
  since?: { epoch?: string; seq: bigint | number };
  /** Ends the iteration (normally). */
  signal?: AbortSignal;
  /** Backoff between reconnects after failures (default 200 ms doubling to 5 s). */
  backoff?: BackoffOptions;
  /** Give up after this many consecutive failed connects (default: never). */
  maxReconnects?: number;
  /**
   * Also retry when the very first connect fails (default false: that error
   * is thrown, as followStats does, so a wrong address or credentials fail
   * at once instead of retrying forever).
   */
  retryFirstConnect?: boolean;
  /** Also yield keepalives (position updates of a quiet or filtered stream). */
  keepalives?: boolean;
  /** Called when the stream broke and a reconnect is scheduled. */
  onReconnect?: (info: { attempt: number; delayMs: number; error: AmphoraError; position?: EventPosition }) => void;
}

export async function* followEvents(client: AmphoraClient, o: FollowEventsOptions = {}): AsyncGenerator<FollowedEvent, void, undefined> {
  const filter = create(EventFilterSchema, { kinds: o.kinds ?? [], lbIds: o.lbIds ?? [] });
  let position: EventPosition | undefined = o.since ? { epoch: o.since.epoch ?? "", seq: BigInt(o.since.seq) } : undefined;
  let failures = 0;
  /** Whether a stream ever began (its start message came). */
  let established = false;
  /** A resync to report once the new live stream has begun (see below). */
  let resync: Extract<FollowedEvent, { type: "resync" }> | undefined;
  while (!o.signal?.aborted && !client.closed) {
    const ac = new AbortController();
    const onAbort = () => ac.abort(o.signal!.reason);
    o.signal?.addEventListener("abort", onAbort, { once: true });
    let error: AmphoraError;
    try {
      const request = position ? { sinceSeq: position.seq, epoch: position.epoch, filter } : { filter };
      for await (const msg of client.events.watchEvents(request, { signal: ac.signal, timeoutMs: 0 })) {
        const m = msg.message;
        if (m.case === "start") {
          failures = 0;
          established = true;
          // Live (no resume point): the stream starts after the newest event.
          if (!position) position = { epoch: m.value.epoch, seq: m.value.headSeq };
          // "" (typed by a person) becomes the epoch the agent resumed in.
          else if (!position.epoch) position = { epoch: m.value.epoch, seq: position.seq };
          // Only now, with the live stream in place: whatever the caller
          // re-reads after this item, every later change still arrives.
          if (resync) {
            const r = resync;
            resync = undefined;
            yield r;
          }
        } else if (m.case === "event") {
          const e = m.value;
          // Never twice, also if an agent ever sent one again.
          if (position && e.epoch === position.epoch && e.seq <= position.seq) continue;
          position = { epoch: e.epoch, seq: e.seq };
          yield { type: "event", event: e };
        } else if (m.case === "keepalive") {
          if (position && m.value.epoch === position.epoch && m.value.seq > position.seq) position = { epoch: position.epoch, seq: m.value.seq };
          if (o.keepalives && position) yield { type: "keepalive", position };
        }
      }
      // The agent ended the stream (shutting down): resume on the next one.
      error = toAmphoraError(new ConnectError("the agent ended the event stream", Code.Unavailable), { agent: client.baseUrl });
    } catch (e) {
      if (o.signal?.aborted) return;
      error = toAmphoraError(e, { agent: client.baseUrl });
      if (error.code === Code.Canceled && client.closed) return;
      if (error.code === Code.OutOfRange) {
        // The resume point cannot be served: go on live, and say so as
        // soon as the live stream has begun (before any of its events).
        resync ??= { type: "resync", reason: error.reason || "OUT_OF_RANGE", from: position, error };
        position = undefined;
        failures = 0;
        continue;
      }
      if (error.code === Code.ResourceExhausted && error.reason === "SLOW_CONSUMER") {
        // Fell behind while the agent still holds the events: resume at once.
        o.onReconnect?.({ attempt: 0, delayMs: 0, error, position });
        continue;
      }
      if (!worthReconnecting(error, established, failures)) throw error;
      if (!established && !o.retryFirstConnect) throw error;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
    failures++;
    if (!(await pauseBeforeReconnect(failures, error, o, (delayMs) => o.onReconnect?.({ attempt: failures, delayMs, error: error!, position })))) return;
  }
}
