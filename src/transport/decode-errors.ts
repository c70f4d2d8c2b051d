// A request the client got wrong is invalid_argument, whatever protocol
// carried it. connect-es decodes request messages before any interceptor
// runs and reports a binary body it cannot decode as `internal` ("parse
// binary: ..."; its JSON path already says invalid_argument), a compressed
// flag without a negotiated compression as `internal`, and a unary call
// with no or two messages as `unimplemented`. Those are the client's
// mistakes: this module recognises them (one classifier) and rewrites the
// answer of every protocol (Connect unary and streaming, gRPC, gRPC-Web)
// where connect-es encodes it, so no decode failure ever reads as a fault
// of the agent (gRPC 13, HTTP 500).
import { tapStream } from "./stream-tap.js";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamFromJson, endStreamToJson, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";

/**
 * The invalid_argument error a connect-es decode failure stands for, or
 * undefined when `err` is something else. `what` names the request message.
 */
export function asDecodeError(err: ConnectError, what = "request message"): ConnectError | undefined {
  const m = err.rawMessage;
  let text: string | undefined;
  if (err.code === Code.Internal && m.startsWith("parse binary: ")) {
    text = `could not decode the ${what} from binary protobuf: ${m.slice("parse binary: ".length)}`;
  } else if (err.code === Code.Internal && m.startsWith("received compressed envelope, but do not know how to decompress")) {
    text = `could not decode the ${what}: it is flagged compressed but the request names no compression (grpc-encoding / connect-content-encoding)`;
  } else if (err.code === Code.Internal && m === "decompression failed" && (err.cause as { code?: unknown } | undefined)?.code !== "Z_MEM_ERROR") {
    // zlib refused the bytes (a truncated stream: Z_BUF_ERROR); connect-es
    // says invalid_argument only for some of zlib's codes.
    text = `could not decompress the ${what}: ${(err.cause as Error | undefined)?.message ?? "not valid for its content encoding"}`;
  } else if (err.code === Code.Unimplemented && /^protocol error: missing input message/.test(m)) {
    text = `could not decode the ${what}: the request body holds no message`;
  } else if (err.code === Code.Unimplemented && /^protocol error: received extra input message/.test(m)) {
    text = `could not decode the ${what}: the request body holds more than one message`;
  }
  return text === undefined ? undefined : new ConnectError(text, Code.InvalidArgument, err.metadata);
}

export type DecodeErrorObserver = (method: string, error: ConnectError, req: UniversalServerRequest) => void;

const enc = new TextEncoder();

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

/** One whole envelope with `flag` set in one chunk (how connect-es writes its last one), else undefined. */
function envelopeData(chunk: Uint8Array, flag: number): Uint8Array | undefined {
  if (chunk.byteLength < 5 || (chunk[0]! & flag) !== flag || chunk[0]! & 0x01) return undefined;
  const len = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  return chunk.byteLength === 5 + len ? chunk.subarray(5) : undefined;
}

/** `seen` is told of each rewrite, with the call's method name and request. */
interface Seen {
  method: string;
  req: UniversalServerRequest;
  observe: DecodeErrorObserver | undefined;
}

function rewrite(res: UniversalServerResponse, what: string, seen: Seen): Promise<UniversalServerResponse> | UniversalServerResponse {
  const ct = res.header?.get("content-type") ?? "";
  // A Connect unary answer that is not an error (errors are JSON, status
  // >= 400): nothing to look at. Most calls end here, before the three
  // header reads below (each ~0.1 µs, more under load).
  if (ct === "application/proto" || (res.status < 400 && ct.startsWith("application/json"))) return res;
  const body = res.body;
  if (!body) return res;
  // A negotiated compression (grpc-encoding, connect-content-encoding) does
  // not mean the end of the stream is compressed: connect-es compresses only
  // envelopes of 1 KiB and more, a decode error's is small (compressed
  // envelopes are passed as they are).
  const fix = (e: ConnectError | undefined) => {
    const d = e && asDecodeError(e, what);
    if (d) seen.observe?.(seen.method, d, seen.req);
    return d;
  };
  if (ct.startsWith("application/grpc-web")) {
    return { ...res, body: mapChunks(body, (c) => {
      const data = envelopeData(c, trailerFlag);
      if (!data) return c;
      const trailer = trailerParse(data);
      const d = fix(findTrailerError(trailer));
      return d ? envelope(trailerFlag, trailerSerialize(setTrailerStatus(trailer, d))) : c;
    }) };
  }
  if (ct.startsWith("application/grpc")) {
    const trailer = res.trailer;
    if (!trailer) return res;
    // The trailer is filled when the body ends, before the adapter sends it.
    return { ...res, body: mapChunks(body, (c) => c, () => {
      const d = fix(findTrailerError(trailer));
      if (d) setTrailerStatus(trailer, d);
    }) };
  }
  if (ct.startsWith("application/connect+")) {
    return { ...res, body: mapChunks(body, (c) => {
      const data = envelopeData(c, endStreamFlag);
      if (!data) return c;
      let end;
      try {
        end = endStreamFromJson(data);
      } catch {
        return c;
      }
      const d = fix(end.error);
      return d ? envelope(endStreamFlag, enc.encode(JSON.stringify(endStreamToJson(end.metadata, d, undefined)))) : c;
    }) };
  }
  if (ct.startsWith("application/json") && res.status >= 400 && !res.header?.get("content-encoding")) {
    // Connect unary: the error is the whole body, in one chunk.
    return (async () => {
      const chunks: Uint8Array[] = [];
      for await (const c of body) chunks.push(c);
      const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const d = fix(errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown)));
      if (!d) return { ...res, body: oneChunk(bytes) };
      const out = errorToJsonBytes(d, undefined);
      const header = new Headers(res.header);
      header.set("content-length", String(out.byteLength));
      return { ...res, status: codeToHttpStatus(d.code), header, body: oneChunk(out) };
    })();
  }
  return res;
}

async function* oneChunk(b: Uint8Array): AsyncIterable<Uint8Array> {
  yield b;
}

function mapChunks(body: AsyncIterable<Uint8Array>, f: (c: Uint8Array) => Uint8Array, atEnd?: () => void): AsyncIterable<Uint8Array> {
  return tapStream(body, { map: f, onEnd: atEnd });
}

/**
 * Wraps every handler of `router` (call after the routes are registered,
 * before the adapter reads them) so that decode failures answer
 * invalid_argument; `observe` hears each one (logging, metrics).
 */
export function mapDecodeErrors(router: ConnectRouter, observe?: DecodeErrorObserver): void {
  const hs = router.handlers as UniversalHandler[];
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i]!;
    const method = `${h.service.typeName}/${h.method.name}`;
    const what = `${h.method.input.typeName} request`;
    const handler = async (req: UniversalServerRequest) => rewrite(await h(req), what, { method, req, observe });
    hs[i] = Object.assign(handler, h);
  }
}
