// The later messages of a server stream written straight to the HTTP
// response, past connect's response pipeline.
//
// Why: connect passes each streamed message through a chain of async
// generators (serialize, catch, compress, join, the node adapter's write
// loop), ~8 promise steps and ~8 KB of short-lived objects per message.
// A WatchStats tick sends one message to each of 1,000 streams: that chain
// was most of the ~65 µs per subscriber, and the objects it leaves waiting
// for the next tick (each stream's pending steps live ~1 s) are what fills
// the old generation every tick. For the binary protocols without
// compression, a message on the wire is the same for Connect, gRPC and
// gRPC-Web: one flag byte (1: compressed), a 4-byte big-endian length, the
// protobuf bytes. So once connect has written the headers and the first
// message, a handler may write the next ones itself, in order, on the same
// response. Compression follows connect's rule: the negotiated codec for
// messages of 1 KiB and more, none below.
//
// Ordering: connect asks a handler for its next message only after it has
// handed the previous one to the response (its write loop awaits each
// write; no stage reads ahead), and a handler that writes here does not
// yield again until it ends, so every byte goes to one Writable in the
// order it was produced. The end of the stream (Connect's end message,
// gRPC's trailers) stays connect's: the handler returns and connect writes it.
import { createContextKey, type ContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { NodeResponse } from "./node-http.js";

/** The node response of the call (set by the server for the server-streaming calls it serves itself). */
export const nodeResponseKey: ContextKey<NodeResponse | undefined> = createContextKey<NodeResponse | undefined>(undefined, { description: "node response of the call" });

/** What the server offers to compress responses with (connect-node's default, made explicit). */
export const RESPONSE_COMPRESSIONS: Compression[] = [compressionGzip, compressionBrotli];
const CODECS = new Map(RESPONSE_COMPRESSIONS.map((c) => [c.name, c]));

/** connect's default compressMinBytes: smaller messages go uncompressed (flag 0), which every client reads. */
const COMPRESS_MIN_BYTES = 1024;

const BINARY = /^application\/(grpc(-web)?(\+proto)?|connect\+proto)\s*(;|$)/;

export interface DirectStream {
  /**
   * Writes one message: the concatenation of `parts` (its protobuf
   * bytes, in pieces that are not copied when uncompressed). True once
   * the response took it (at once, or after `drain`); false if the
   * response is gone or `signal` aborted while waiting for room (nothing
   * more should be written).
   */
  write(parts: readonly Uint8Array[], signal?: AbortSignal): Promise<boolean> | boolean;
}

/**
 * A writer for the messages of this server-streaming call after the ones
 * connect has written, or undefined when connect must write them: JSON (its
 * end-of-stream and error framing differ), the REST layer, no node response
 * (an in-process call), or a compression this module does not know.
 */
export function directStream(ctx: HandlerContext): DirectStream | undefined {
  const res = ctx.values.get(nodeResponseKey);
  if (!res) return undefined;
  if (!BINARY.test(ctx.requestHeader.get("content-type") ?? "")) return undefined;
  // Set by connect before the implementation runs when it compresses responses.
  const enc = ctx.responseHeader.get("connect-content-encoding") ?? ctx.responseHeader.get("grpc-encoding");
  if (!enc || enc === "identity") return new ResponseWriter(res, undefined);
  const codec = CODECS.get(enc);
  return codec ? new ResponseWriter(res, codec) : undefined;
}

/** Ended, or its stream or socket destroyed (HTTP/2 compat responses have no `destroyed` of their own). */
function gone(res: NodeResponse): boolean {
  const r = res as NodeResponse & { destroyed?: boolean; stream?: { destroyed: boolean } };
  return res.writableEnded || r.destroyed === true || r.stream?.destroyed === true;
}

class ResponseWriter implements DirectStream {
  constructor(
    private readonly res: NodeResponse,
    private readonly codec: Compression | undefined,
  ) {}

  write(parts: readonly Uint8Array[], signal?: AbortSignal): Promise<boolean> | boolean {
    if (gone(this.res) || signal?.aborted) return false;
    let len = 0;
    for (const p of parts) len += p.length;
    if (this.codec && len >= COMPRESS_MIN_BYTES) {
      return this.codec.compress(parts.length === 1 ? parts[0]! : Buffer.concat(parts, len)).then((c) => this.put([c], c.length, 1, signal));
    }
    return this.put(parts, len, 0, signal);
  }

  private put(parts: readonly Uint8Array[], len: number, flags: number, signal: AbortSignal | undefined): Promise<boolean> | boolean {
    const res = this.res;
    // (Compressing took a turn of the event loop: look again.)
    if (gone(res) || signal?.aborted) return false;
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = flags;
    prefix.writeUInt32BE(len, 1);
    // One write of all the pieces (HTTP/2: one writev), none copied.
    res.cork();
    // Each write says whether the response is below its high-water mark
    // with it; the last one's answer is the one 'drain' will follow.
    let room = res.write(prefix);
    for (const p of parts) if (p.length) room = res.write(p);
    res.uncork();
    if (room) return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        res.off("drain", onDrain);
        res.off("close", onGone);
        res.off("error", onGone);
        signal?.removeEventListener("abort", onGone);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onGone = () => done(false);
      res.once("drain", onDrain);
      res.once("close", onGone);
      res.once("error", onGone);
      signal?.addEventListener("abort", onGone);
    });
  }
}
