// Node's request and response to Connect's protocol handlers and back: the
// job of connect-node's connectNodeAdapter, on the same router (protocols,
// handlers, interceptors, options), with glue that costs less per call.
// Profiled on `npm run bench -- request-path` (Connect binary
// GetApiVersion, 8 clients), connect-node's glue spent per call ~5 µs
// parsing a URL from a path the router had just matched, ~5 µs on an async
// generator that only re-yields the request body's chunks, and, per
// response, an async iteration step, a promise and two listener pairs per
// written chunk and one more for the end. Here the URL is concatenated
// (when the authority is a plain host[:port]), the request stream is the
// body, and chunks are written straight, waiting only when node asks to.
import type { Http2ServerRequest } from "node:http2";
import type { ServerResponse } from "node:http";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { NodeRequest, NodeResponse } from "./node-http.js";

export interface RpcAdapterOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  contextValues(req: NodeRequest): ContextValues;
  /** Serves what no RPC path matches. */
  fallback(req: NodeRequest, res: NodeResponse): void;
  /** Hears a call whose response could not be written (other than a client gone). */
  onFailure(method: string, err: ConnectError): void;
}

/** A node request listener serving the router's RPCs (and the fallback for other paths). */
export function rpcAdapter(o: RpcAdapterOptions): (req: NodeRequest, res: NodeResponse) => void {
  const router = createConnectRouter(o);
  o.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, h);
  return (req: NodeRequest, res: NodeResponse) => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const h = paths.get(q < 0 ? url : url.slice(0, q));
    if (!h) return o.fallback(req, res);
    // Nothing a request carries may throw out of a request listener (that
    // would end the process): a failure before Connect made a response is
    // answered here.
    let call: Promise<UniversalServerResponse>;
    try {
      call = h(universalRequest(req, res, o.contextValues(req)));
    } catch (e) {
      call = Promise.reject(e);
    }
    call
      .then(
        (u) => writeResponse(u, res),
        (e: unknown) => {
          answerFailure(res);
          throw e;
        },
      )
      .catch((e: unknown) => {
        const err = ConnectError.from(e);
        if (err.code !== Code.Aborted) o.onFailure(`${h.service.typeName}/${h.method.name}`, err);
      });
  };
}

const FAILURE_BODY = JSON.stringify({ code: "internal", message: "internal error" });

/** Answers a call that failed before it had a response: a Connect error (other protocols read HTTP 500 as internal). */
function answerFailure(res: NodeResponse): void {
  try {
    if (!res.headersSent) {
      (res as ServerResponse).writeHead(500, { "content-type": "application/json", "content-length": Buffer.byteLength(FAILURE_BODY) });
      res.end(FAILURE_BODY);
    } else if (!res.writableEnded) res.destroy();
  } catch {
    // the client is gone already
  }
}

// An authority that makes a valid URL as it is (what clients send); a port
// of 5 digits is checked by the URL parser (it may exceed 65535).
const PLAIN_AUTHORITY = /^[A-Za-z0-9.-]+(:\d{1,4})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,4})?$/;

/** Connect's view of a node request; its signal aborts when the request or response closes. */
export function universalRequest(req: NodeRequest, res: NodeResponse, contextValues: ContextValues): UniversalServerRequest {
  const h2 = req.httpVersionMajor >= 2;
  const authority = (h2 ? (req as Http2ServerRequest).authority : undefined) || req.headers.host || "localhost";
  const path = req.url || "/";
  const url = path.startsWith("/") && PLAIN_AUTHORITY.test(authority) ? `https://${authority}${path}` : urlOf(path, authority);
  const abort = new AbortController();
  if (h2) {
    const stream = (req as Http2ServerRequest).stream;
    // A reset names why the client went away; a plain close gives the
    // default reason (an AbortError, which Connect reads as canceled).
    req.once("close", () => abort.abort(resetError(stream.rstCode)));
  } else {
    // HTTP/1.1 has no reset codes. The request emits "close" once its body
    // is read, so the end of the exchange is the response's "close".
    const onError = (e: Error) => {
      off();
      abort.abort(connectionError(e));
    };
    const onClose = () => {
      off();
      abort.abort(req.errored ? connectionError(req.errored) : undefined);
    };
    const off = () => {
      req.off("error", onError);
      res.off("close", onClose);
    };
    req.once("error", onError);
    res.once("close", onClose);
  }
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url,
    header: webHeaders(req.headers),
    // A node request is an async iterable of its body's chunks (Buffers).
    body: req as AsyncIterable<Uint8Array>,
    signal: abort.signal,
    contextValues,
  };
}

/** The URL of a request whose authority is not a plain host[:port]: parsed, else on localhost (never a throw). */
function urlOf(path: string, authority: string): string {
  try {
    return new URL(path, `https://${authority}`).href;
  } catch {
    return new URL(path, "https://localhost").href;
  }
}

function webHeaders(nodeHeaders: NodeRequest["headers"]): Headers {
  const h = new Headers();
  for (const k in nodeHeaders) {
    if (k.charCodeAt(0) === 58 /* ":" pseudo-header */) continue;
    const v = nodeHeaders[k];
    if (typeof v === "string") h.append(k, v);
    else if (Array.isArray(v)) for (const x of v) h.append(k, x);
  }
  return h;
}

function nodeHeaders(h: Headers | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  h?.forEach((v, k) => {
    const had = out[k];
    out[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  });
  return out;
}

/**
 * Writes Connect's response: the status and headers once the first chunk
 * is made (until then the implementation may still set headers), each
 * chunk as it comes, trailers, the end. A failed write is reported to the
 * body's producer (so the handler stops) and rethrown.
 */
export async function writeResponse(u: UniversalServerResponse, res: NodeResponse): Promise<void> {
  const it = u.body?.[Symbol.asyncIterator]();
  let writing = false;
  try {
    let chunk = it ? await it.next() : undefined;
    writing = true;
    if (!res.headersSent) (res as ServerResponse).writeHead(u.status, nodeHeaders(u.header));
    while (chunk && !chunk.done) {
      const room = res.write(chunk.value);
      // Not kept while waiting: a stream's first message can be large (a
      // WatchStats snapshot), and the next may come only when it ends.
      chunk = undefined;
      if (!room) await drained(res);
      writing = false;
      chunk = await it!.next();
      writing = true;
    }
    if (u.trailer) (res as ServerResponse).addTrailers(nodeHeaders(u.trailer));
    res.end();
  } catch (e) {
    if (writing) it?.throw?.(e).catch(() => {});
    // Nothing more will be written: end the exchange rather than leave the
    // client waiting (an HTTP/2 stream is reset, an HTTP/1.1 socket closed).
    if (!res.writableEnded) res.destroy();
    throw writing ? connectionError(e) : e;
  } finally {
    it?.return?.().catch(() => {});
  }
}

/** Resolves on "drain"; rejects if the response errs or closes first. */
function drained(res: NodeResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      res.off("drain", onDrain);
      res.off("error", done);
      res.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new ConnectError("the response closed before it was written", Code.Aborted));
    res.once("drain", onDrain);
    res.once("error", done);
    res.once("close", onClose);
  });
}

// HTTP/2 reset codes that say why a stream ended (RFC 9113 section 7), read
// as gRPC's HTTP/2 transport specification maps them; NO_ERROR and
// STREAM_CLOSED (an ordinary end) are not errors.
const RESET_CODES: Record<number, [string, Code]> = {
  0x1: ["PROTOCOL_ERROR", Code.Internal],
  0x2: ["INTERNAL_ERROR", Code.Internal],
  0x3: ["FLOW_CONTROL_ERROR", Code.Internal],
  0x4: ["SETTINGS_TIMEOUT", Code.Internal],
  0x6: ["FRAME_SIZE_ERROR", Code.Internal],
  0x7: ["REFUSED_STREAM", Code.Unavailable],
  0x8: ["CANCEL", Code.Canceled],
  0x9: ["COMPRESSION_ERROR", Code.Internal],
  0xa: ["CONNECT_ERROR", Code.Internal],
  0xb: ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  0xc: ["INADEQUATE_SECURITY", Code.PermissionDenied],
  0xd: ["HTTP_1_1_REQUIRED", Code.PermissionDenied],
};

/** Why a stream reset with `code` ended the call, or undefined for an ordinary end. */
export function resetError(code: number | undefined): ConnectError | undefined {
  const known = code === undefined ? undefined : RESET_CODES[code];
  return known && new ConnectError(`the client reset the HTTP/2 stream (${known[0]}, 0x${code!.toString(16)})`, known[1]);
}

// Errors that mean the peer went away mid-call.
const GONE = new Set(["ECONNRESET", "EPIPE", "ERR_STREAM_DESTROYED", "ERR_STREAM_PREMATURE_CLOSE", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_ERROR", "ERR_STREAM_WRITE_AFTER_END"]);

/** A connection or write failure as a ConnectError: aborted if the client went away, internal otherwise. */
export function connectionError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  let code = Code.Internal;
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    if (GONE.has((c as { code?: unknown }).code as string)) code = Code.Aborted;
  }
  return ConnectError.from(e, code);
}
