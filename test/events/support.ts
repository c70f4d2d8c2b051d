// Helpers of the WatchEvents tests: a background reader of one stream that
// keeps everything it got, and a TCP proxy whose connections a test can cut.
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { EventService, EventKind, type Event, type WatchEventsRequest, type EventStreamStart } from "../../src/gen/amphora/v1/events_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchEventsRequestSchema } from "../../src/gen/amphora/v1/events_pb.js";

export interface Reader {
  events: Event[];
  start?: EventStreamStart;
  error?: ConnectError;
  ended: boolean;
  /** The first event (after `after` events) that satisfies `pred`; fails the test after `timeoutMs`. */
  until(what: string, pred: (e: Event) => boolean, timeoutMs?: number): Promise<Event>;
  stop(): void;
  /** Resolves once the stream ended (by error or normally). */
  done: Promise<void>;
}

export function readEvents(client: Client<typeof EventService>, req: MessageInitShape<typeof WatchEventsRequestSchema> = {}): Reader {
  const ac = new AbortController();
  const r: Reader = {
    events: [],
    ended: false,
    async until(what, pred, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = r.events.find(pred);
        if (hit) return hit;
        if (r.ended) assert.fail(`stream ended (${r.error?.message ?? "normally"}) before ${what}; got: ${r.events.map((e) => e.summary).join(" | ")}`);
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; got: ${r.events.map((e) => e.summary).join(" | ")}`);
        await sleep(20);
      }
    },
    stop: () => ac.abort(),
    done: Promise.resolve(),
  };
  r.done = (async () => {
    try {
      for await (const m of client.watchEvents(req as WatchEventsRequest, { signal: ac.signal })) {
        if (m.message.case === "start") r.start = m.message.value;
        else if (m.message.case === "event") r.events.push(m.message.value);
      }
    } catch (e) {
      if (!ac.signal.aborted) r.error = ConnectError.from(e);
    } finally {
      r.ended = true;
    }
  })();
  return r;
}

export const kindIs = (k: EventKind, lbId?: string) => (e: Event) => e.kind === k && (lbId === undefined || e.lbId === lbId);

/** Sequence numbers must be 1-spaced and increasing: nothing lost, nothing twice. */
export function assertContiguous(events: Event[], from?: bigint): void {
  let prev = from;
  for (const e of events) {
    if (prev !== undefined) assert.equal(e.seq, prev + 1n, `after event ${prev} came ${e.seq} (${e.summary})`);
    prev = e.seq;
  }
}

export interface CuttableProxy {
  port: number;
  /** Destroys every open connection (both sides). */
  cut(): void;
  /** While held, new connections are refused (closed at once). */
  hold(on: boolean): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to `targetPort`. */
export async function cuttableProxy(targetPort: number): Promise<CuttableProxy> {
  const sockets = new Set<Socket>();
  let held = false;
  const server: Server = createServer((client) => {
    if (held) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      for (const s of [...sockets]) s.destroy();
    },
    hold(on) {
      held = on;
    },
    async close() {
      for (const s of [...sockets]) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}
