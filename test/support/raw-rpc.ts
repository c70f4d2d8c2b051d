// Raw HTTP/2 requests to an agent, for tests that send what no generated
// client would (garbage bodies, bad envelopes) and read the answer as
// every protocol encodes it.
import http2 from "node:http2";
import { brotliDecompressSync, gunzipSync } from "node:zlib";

export interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

export interface TlsIdentity {
  ca: string;
  cert: string;
  key: string;
}

export function connectH2(url: string, id: TlsIdentity): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, { ca: id.ca, cert: id.cert, key: id.key });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export function rawRequest(
  s: http2.ClientHttp2Session,
  path: string,
  contentType: string | undefined,
  body: Buffer | string,
  headers: Record<string, string> = {},
  method = "POST",
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const h: http2.OutgoingHttpHeaders = { ":method": method, ":path": path, ...headers };
    if (contentType) h["content-type"] = contentType;
    if (contentType?.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")) h.te = "trailers";
    const r = s.request(h);
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    r.on("response", (x) => {
      head = x;
      status = Number(x[":status"]);
    });
    r.on("trailers", (t) => (trailers = t));
    r.on("data", (c: Buffer) => chunks.push(c));
    r.on("end", () => resolve({ status, headers: head, trailers, body: Buffer.concat(chunks) }));
    r.on("error", reject);
    // node ends GET, HEAD and DELETE streams itself when the request is made.
    if (!r.writableEnded) r.end(body);
  });
}

/** A gRPC / Connect-streaming envelope: flags, 4-byte big-endian length, data. */
export function envelope(data: Buffer | Uint8Array, flags = 0): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(data.byteLength, 1);
  return Buffer.concat([h, Buffer.from(data)]);
}

export interface RpcOutcome {
  /** Connect code name as Connect spells it ("invalid_argument"), "ok", or "http-NNN" when no RPC status came back. */
  code: string;
  message: string;
  httpStatus: number;
}

const GRPC_CODES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"];

/** Reads the RPC outcome out of an answer, whichever protocol `contentType` asked for. */
/** Bytes as sent with `encoding` (gzip or br, as the agent compresses), uncompressed. */
function inflate(data: Buffer, encoding: unknown): Buffer {
  if (encoding === "gzip") return gunzipSync(data);
  if (encoding === "br") return brotliDecompressSync(data);
  return data;
}

export function outcomeOf(contentType: string, a: RawAnswer): RpcOutcome {
  // An envelope with flag 0x01 is compressed with the stream's encoding.
  const envelopeData = (flags: number, data: Buffer) => (flags & 0x01 ? inflate(data, a.headers["connect-content-encoding"] ?? a.headers["grpc-encoding"]) : data);
  const grpc = (st: unknown, msg: unknown) => ({
    code: st === undefined ? `http-${a.status}` : GRPC_CODES[Number(st)] ?? `grpc-${String(st)}`,
    message: decodeURIComponent(String(msg ?? "")),
    httpStatus: a.status,
  });
  if (contentType.startsWith("application/grpc-web")) {
    // The trailer is the last envelope (flag 0x80) of the body.
    let off = 0;
    while (off + 5 <= a.body.length) {
      const flags = a.body[off]!;
      const len = a.body.readUInt32BE(off + 1);
      const data = envelopeData(flags, a.body.subarray(off + 5, off + 5 + len));
      if (flags & 0x80) {
        const t = Object.fromEntries(data.toString("utf8").split("\r\n").filter(Boolean).map((l) => {
          const i = l.indexOf(":");
          return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
        }));
        return grpc(t["grpc-status"], t["grpc-message"]);
      }
      off += 5 + len;
    }
    return grpc(a.headers["grpc-status"], a.headers["grpc-message"]);
  }
  if (contentType.startsWith("application/grpc")) {
    return grpc(a.trailers["grpc-status"] ?? a.headers["grpc-status"], a.trailers["grpc-message"] ?? a.headers["grpc-message"]);
  }
  if (contentType.startsWith("application/connect+")) {
    let off = 0;
    while (off + 5 <= a.body.length) {
      const flags = a.body[off]!;
      const len = a.body.readUInt32BE(off + 1);
      if (flags & 0x02) {
        const end = JSON.parse(envelopeData(flags, a.body.subarray(off + 5, off + 5 + len)).toString("utf8")) as { error?: { code: string; message?: string } };
        return end.error ? { code: end.error.code, message: end.error.message ?? "", httpStatus: a.status } : { code: "ok", message: "", httpStatus: a.status };
      }
      off += 5 + len;
    }
    return { code: `http-${a.status}`, message: a.body.toString("utf8").slice(0, 200), httpStatus: a.status };
  }
  // Connect unary: 200 with the message, or an error JSON.
  if (a.status === 200) return { code: "ok", message: "", httpStatus: 200 };
  try {
    const e = JSON.parse(inflate(a.body, a.headers["content-encoding"]).toString("utf8")) as { code?: string; message?: string };
    return { code: e.code ?? `http-${a.status}`, message: e.message ?? "", httpStatus: a.status };
  } catch {
    return { code: `http-${a.status}`, message: a.body.toString("utf8").slice(0, 200), httpStatus: a.status };
  }
}
