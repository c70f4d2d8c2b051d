// Bounds on what a connection may cost before (and just after) it has
// proven who it is, and on how many requests run at once. Without them a
// peer that opens TCP connections and sends nothing, stalls a ClientHello
// half-way, or trickles a request body one byte at a time holds a file
// descriptor and memory for minutes (node's TLS handshake timeout is 120 s,
// and nothing cuts a slow body), and one HTTP/2 session may open streams
// without end. Each bound ends only the offending connection or stream:
// legitimate clients keep being served.
import http2 from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Http2ServerRequest } from "node:http2";
import type { ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import type { ConnectionLimits } from "../config/transport-options.js";

/** Options of http2.createSecureServer that carry limits enforced by node/nghttp2 itself. */
export function serverLimitOptions(l: ConnectionLimits): Pick<http2.SecureServerOptions, "handshakeTimeout" | "settings"> {
  return {
    handshakeTimeout: l.handshakeTimeoutMs,
    // nghttp2 refuses streams past this (RST_STREAM REFUSED_STREAM, which
    // clients retry); node's default advertises no limit at all.
    settings: { maxConcurrentStreams: l.maxStreamsPerSession },
  };
}

/**
 * The peer address of a TLS socket, also after it closed (node drops it
 * then; the wrapped TCP socket still knows it).
 */
export function peerAddress(s: Socket | TLSSocket | undefined): string {
  const x = s as (Socket & { _parent?: Socket }) | undefined;
  const a = x?.remoteAddress ?? x?._parent?.remoteAddress;
  const p = x?.remotePort ?? x?._parent?.remotePort;
  return a ? `${a}:${p ?? "?"}` : "unknown";
}

/**
 * At most `max` lines per `windowMs` for one kind of event, then one line
 * saying how many were left out: a flood of refused connections must not
 * become a flood of log lines (disk, CPU).
 */
export function rateLimitedWarn(logger: Logger, max = 20, windowMs = 10_000) {
  const windows = new Map<string, { start: number; n: number; dropped: number }>();
  return (kind: string, fields: Record<string, unknown>, msg: string) => {
    const now = Date.now();
    let w = windows.get(kind);
    if (!w || now - w.start >= windowMs) {
      if (w?.dropped) logger.warn({ kind, suppressed: w.dropped, windowMs }, "similar log lines suppressed");
      w = { start: now, n: 0, dropped: 0 };
      windows.set(kind, w);
    }
    if (++w.n <= max) logger.warn(fields, msg);
    else w.dropped++;
  };
}

export interface ConnectionGuard {
  /** Call first for every request; false when it was refused (already answered or reset). */
  admit(req: NodeRequest, res: NodeResponse): boolean;
  /** Counters for tests, soak and metrics. */
  stats(): { pendingHandshakes: number; requests: number; droppedHandshakes: number; idleClosed: number; bodyTimeouts: number; refusedRequests: number };
}

/** Installs the bounds on `server` (created with serverLimitOptions). */
export function guardConnections(server: http2.Http2SecureServer, l: ConnectionLimits, logger: Logger): ConnectionGuard {
  const warn = rateLimitedWarn(logger);
  const counters = { droppedHandshakes: 0, idleClosed: 0, bodyTimeouts: 0, refusedRequests: 0 };
  // TCP connections whose TLS handshake has not finished, oldest first,
  // keyed by peer address and port (the TLS socket reports the same).
  const pending = new Map<string, Socket>();
  server.on("connection", (raw: Socket) => {
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    pending.set(key, raw);
    raw.once("close", () => {
      if (pending.get(key) === raw) pending.delete(key);
    });
    // Dropping the oldest rather than refusing the newest: a flood of
    // silent connections cannot keep a real client (who finishes its
    // handshake in milliseconds) out.
    while (pending.size > l.maxPendingHandshakes) {
      const [k, oldest] = pending.entries().next().value as [string, Socket];
      pending.delete(k);
      counters.droppedHandshakes++;
      warn("handshake-dropped", { peer: `${oldest.remoteAddress}:${oldest.remotePort}`, reason: `more than ${l.maxPendingHandshakes} connections in their TLS handshake: the oldest is closed` }, "connection refused");
      oldest.destroy();
    }
  });

  const idle = (close: () => void) => {
    const t = setTimeout(() => {
      counters.idleClosed++;
      close();
    }, l.firstRequestTimeoutMs);
    t.unref();
    return t;
  };
  server.on("secureConnection", (sock: TLSSocket) => {
    pending.delete(`${sock.remoteAddress}|${sock.remotePort}`);
    if (sock.alpnProtocol === "h2") return; // the session below watches it
    const peer = peerAddress(sock);
    const t = idle(() => {
      warn("idle", { peer, reason: `no request within ${l.firstRequestTimeoutMs} ms of the TLS handshake` }, "connection closed");
      sock.destroy();
    });
    firstRequest.set(sock, t);
    sock.once("close", () => clearTimeout(t));
  });
  const firstRequest = new WeakMap<Socket, NodeJS.Timeout>();
  server.on("request", (req) => {
    if (req.httpVersionMajor !== 1) return;
    const t = firstRequest.get(req.socket);
    if (t) {
      clearTimeout(t);
      firstRequest.delete(req.socket);
    }
  });
  server.on("session", (session) => {
    const peer = peerAddress(session.socket as TLSSocket);
    const t = idle(() => {
      warn("idle", { peer, reason: `no request within ${l.firstRequestTimeoutMs} ms of the TLS handshake` }, "connection closed");
      session.destroy();
    });
    session.once("stream", () => clearTimeout(t));
    session.once("close", () => clearTimeout(t));
  });

  let inFlight = 0;
  const bodyDone = (req: NodeRequest): boolean => {
    if (req.httpVersionMajor === 1) return req.complete;
    const st = (req as Http2ServerRequest).stream;
    return st.destroyed || st.endAfterHeaders || st.state?.remoteClose === 1;
  };
  const admit: ConnectionGuard["admit"] = (req, res) => {
    // A connection refused after its handshake (client identity) must not
    // get a request served from data that was already buffered.
    if (req.socket?.destroyed) {
      res.destroy();
      return false;
    }
    if (inFlight >= l.maxRequests) {
      counters.refusedRequests++;
      warn("requests", { peer: peerAddress(req.socket as TLSSocket), reason: `more than ${l.maxRequests} requests in flight` }, "request refused");
      if (req.httpVersionMajor >= 2) {
        // Clients retry a refused stream: it was never processed.
        (req as Http2ServerRequest).stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      } else {
        const body = JSON.stringify({ message: "Service Unavailable", details: `more than ${l.maxRequests} requests in flight` });
        (res as ServerResponse).writeHead(503, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close", "retry-after": "1" });
        res.end(body);
      }
      return false;
    }
    inFlight++;
    // A body not complete yet gets a deadline, checked by one sweep timer
    // for all requests rather than a timer per request (a setTimeout and
    // clearTimeout per Connect call, whose body arrives after its headers).
    if (!bodyDone(req)) {
      waiting.set(req, { res, deadline: Date.now() + l.bodyTimeoutMs });
      sweeper ??= setInterval(sweep, sweepMs).unref();
    }
    res.on("close", onClose);
    return true;
  };
  // Shared by every request: no closure per request.
  function onClose(this: NodeResponse) {
    inFlight--;
    const req = (this as { req?: NodeRequest }).req;
    if (req) waiting.delete(req);
  }
  const waiting = new Map<NodeRequest, { res: NodeResponse; deadline: number }>();
  const sweepMs = Math.min(1000, Math.max(50, Math.floor(l.bodyTimeoutMs / 8)));
  let sweeper: NodeJS.Timeout | undefined;
  const sweep = () => {
    const now = Date.now();
    // Deadlines grow in insertion order: stop at the first one not due.
    for (const [req, w] of waiting) {
      if (bodyDone(req) || w.res.writableEnded) {
        waiting.delete(req);
        continue;
      }
      if (w.deadline > now) break;
      waiting.delete(req);
      counters.bodyTimeouts++;
      warn("body", { peer: peerAddress(req.socket as TLSSocket), request: `${req.method} ${req.url}`, reason: `request body not received within ${l.bodyTimeoutMs} ms` }, "request cut");
      // HTTP/2: reset just this stream; HTTP/1.1: the connection is the request.
      if (req.httpVersionMajor >= 2) (req as Http2ServerRequest).stream.close(http2.constants.NGHTTP2_CANCEL);
      else req.socket.destroy();
    }
    if (!waiting.size) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };

  return {
    admit,
    stats: () => ({ pendingHandshakes: pending.size, requests: inFlight, ...counters }),
  };
}
