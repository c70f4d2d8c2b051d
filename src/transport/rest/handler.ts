// REST/JSON at the classic /1.0 paths: a fallback of the agent server that
// turns an HTTP request into the request message of the method its route
// names, calls it in-process through the same router and interceptors as
// Connect, and turns the answer (or the error) into what an Octavia
// controller expects.
import type { ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import http2 from "node:http2";
import { setImmediate as nextTurn } from "node:timers/promises";
import { create, getOption, hasOption, type DescField, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";
import { field as validateFieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../../log.js";
import { peerSubject, type FallbackHandler, type NodeRequest, type NodeResponse } from "../node-http.js";
import { peerSubjectKey, protocolKey } from "../interceptors.js";
import { cachedPeerSubject } from "../peer-cache.js";
import { BodyTooLarge, checkDeclaredLength, ClientGone, readLimited } from "./body.js";
import { restError } from "./errors.js";
import { createInProcess } from "./in-process.js";
import { LazyAbort } from "./lazy-abort.js";
import { scalarFromText } from "./scalar-text.js";
import { listFieldToJson, messageFromJson, messageToJson } from "./json.js";
import { endpointsOf, RouteTable, splitPath, type RestEndpoint } from "./route-table.js";

export interface RestOptions {
  /** The agent's routes; pass them through registerOnce so both routers share implementations. */
  routes: (router: ConnectRouter) => void;
  /** The same interceptors the server gets (validation is added after them, as there). */
  interceptors: Interceptor[];
  logger: Logger;
  /** Told of every request refused before it became a call (405, 413, unusable input), by HTTP status. */
  onReject?: (status: number) => void;
}

export interface RestHandler {
  fallback: FallbackHandler;
  table: RouteTable;
}

/** A client-caused problem found before the call (bad path value, bad JSON, too large). */
class RestReject extends Error {
  constructor(readonly status: number, message: string, readonly details: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

const JSON_TYPE = "application/json";
const utf8 = new TextDecoder("utf-8", { fatal: true });

function send(res: NodeResponse, status: number, body: string, headers: Record<string, string>): void {
  const r = res as ServerResponse;
  r.writeHead(status, { ...headers, "content-length": String(Buffer.byteLength(body)) });
  r.end(body);
}

function sendJson(res: NodeResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  send(res, status, body, { "content-type": JSON_TYPE, ...headers });
}

function errorBody(message: string, details: string): string {
  return JSON.stringify({ message, details });
}

/** Strips the quotes and weak marker of an If-Match value; "*" means any version. */
export function ifMatchValue(h: string | string[] | undefined): string | undefined {
  const raw = (Array.isArray(h) ? h[0] : h)?.split(",")[0]?.trim();
  if (!raw || raw === "*") return undefined;
  return raw.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/** The value of a path or query parameter for its field, checked against the field's type and range. */
function textValue(e: RestEndpoint, f: DescField, raw: string, where: "path value" | "query parameter", name = f.name): unknown {
  const v = scalarFromText(f, raw);
  if (v.ok) return v.value;
  const shown = raw.length > 80 ? `${raw.slice(0, 80)}...` : raw;
  // Octavia's agent answers an unknown action with these words.
  if (f.fieldKind === "enum") throw new RestReject(400, e.invalidMessage, `Unknown ${name}: ${shown}`);
  throw new RestReject(400, e.invalidMessage, `${where} ${name}: expected ${v.expected}, got ${JSON.stringify(shown)}`);
}

/**
 * Deepest JSON nesting a request may have: the contract's deepest message
 * is 3 levels; a 1 MiB body of "[[[[..." kept JSON.parse (and the garbage
 * collector after it) busy for 0.5 s.
 */
const MAX_JSON_DEPTH = 16;

/** The nesting depth of JSON text, counted outside strings in one pass; stops counting past `limit`. */
function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/** max_items of a repeated field's validation rule, if any. */
function maxItems(f: DescField): number | undefined {
  if (!hasOption(f, validateFieldRules)) return undefined;
  const r = getOption(f, validateFieldRules);
  if (r.type.case !== "repeated") return undefined;
  const v = (r.type.value as { maxItems?: bigint }).maxItems;
  return v && v > 0n ? Number(v) : undefined;
}

/**
 * The repeated fields of `json` (for message `desc`, nested messages
 * included) that hold more items than their max_items rule allows: checked
 * on the parsed JSON before 20,000 messages are built only to be refused by
 * that same rule. Walks only what the body holds (linear in its size).
 */
function tooManyItems(desc: DescMessage, json: JsonValue, path = ""): string | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  for (const f of desc.fields) {
    const v = (json as Record<string, JsonValue>)[f.name] ?? (json as Record<string, JsonValue>)[f.jsonName];
    if (v === undefined) continue;
    if (f.fieldKind === "list" && Array.isArray(v)) {
      const most = maxItems(f);
      if (most !== undefined && v.length > most) return `${path}${f.name}: at most ${most} items, got ${v.length}`;
      if (f.listKind === "message") {
        for (const x of v) {
          const bad = tooManyItems(f.message, x, `${path}${f.name}[].`);
          if (bad) return bad;
        }
      }
    } else if (f.fieldKind === "message") {
      const bad = tooManyItems(f.message, v, `${path}${f.name}.`);
      if (bad) return bad;
    }
  }
  return undefined;
}

function parseJson(e: RestEndpoint, buf: Buffer): JsonValue {
  const text = utf8.decode(buf);
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new RestReject(400, e.invalidMessage, `body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new RestReject(400, e.invalidMessage, `body is not valid JSON: ${(err as Error).message}`);
  }
}

async function buildRequest(e: RestEndpoint, req: NodeRequest, params: Map<DescField, string>): Promise<Message> {
  let msg: Message;
  checkDeclaredLength(req.headers["content-length"], e.bodyLimit);
  const body = await readLimited(req, e.bodyLimit);
  try {
    switch (e.body.kind) {
      case "json-object": {
        const json = body.length ? parseJson(e, body) : {};
        if (json === null || typeof json !== "object" || Array.isArray(json)) throw new RestReject(400, e.invalidMessage, "body must be a JSON object");
        const tooMany = tooManyItems(e.method.input, json);
        if (tooMany) throw new RestReject(400, e.invalidMessage, tooMany);
        msg = messageFromJson(e.method.input, json);
        break;
      }
      case "json-list": {
        const json = parseJson(e, body);
        if (!Array.isArray(json)) throw new RestReject(400, e.invalidMessage, "body must be a JSON array");
        const tooMany = tooManyItems(e.method.input, { [e.body.field.name]: json });
        if (tooMany) throw new RestReject(400, e.invalidMessage, tooMany);
        msg = messageFromJson(e.method.input, { [e.body.field.name]: json });
        break;
      }
      default:
        msg = create(e.method.input);
    }
  } catch (err) {
    if (err instanceof RestReject) throw err;
    // fromJson: a field of the wrong type, an unknown enum name...
    throw new RestReject(400, e.invalidMessage, (err as Error).message);
  }
  const m = msg as unknown as Record<string, unknown>;
  if (e.body.kind === "text") {
    try {
      m[e.body.field.localName] = utf8.decode(body);
      // Each step on a body of megabytes (decode, encode, validate) holds the
      // event loop for ~10 ms: let other calls run between them.
      if (body.length > 256 * 1024) await nextTurn();
    } catch {
      throw new RestReject(400, e.invalidMessage, "body is not valid UTF-8 text");
    }
  } else if (e.body.kind === "bytes") {
    m[e.body.field.localName] = new Uint8Array(body);
  }
  // Query parameters set the request's other top-level scalar fields, as
  // in google.api.http (`?force=true` on a reload); path values win over
  // both query and JSON body. Other parameters are ignored, as the Python
  // agent ignores them (cache busters, tracing tags).
  for (const [name, raw] of new URLSearchParams((req.url ?? "").split("?")[1] ?? "")) {
    const f = e.method.input.fields.find((x) => x.name === name || x.jsonName === name);
    if (!f || (f.fieldKind !== "scalar" && f.fieldKind !== "enum")) continue;
    if ([...params.keys()].includes(f) || ("field" in e.body && e.body.field === f)) {
      throw new RestReject(400, e.invalidMessage, `query parameter ${JSON.stringify(name)} is given by the path or body`);
    }
    m[f.localName] = textValue(e, f, raw, "query parameter", name);
  }
  for (const [f, raw] of params) m[f.localName] = textValue(e, f, raw, "path value");
  if (e.ifMatchField) {
    const v = ifMatchValue(req.headers["if-match"]);
    if (v !== undefined) m[e.ifMatchField.localName] = v;
  }
  return msg;
}

function writeSuccess(e: RestEndpoint, res: NodeResponse, out: Message): void {
  const o = out as unknown as Record<string, unknown>;
  const headers: Record<string, string> = {};
  if (e.etagField) {
    const tag = o[e.etagField.localName];
    // Unquoted md5, as the Python agent sends it; If-Match accepts either form.
    if (typeof tag === "string" && tag !== "") headers.etag = tag;
  }
  switch (e.response.kind) {
    case "text":
      send(res, e.successStatus, String(o[e.response.field.localName] ?? ""), { ...headers, "content-type": "text/plain; charset=utf-8" });
      return;
    case "json-list":
      sendJson(res, e.successStatus, listFieldToJson(e.method.output, out, e.response.field), headers);
      return;
    default:
      sendJson(res, e.successStatus, messageToJson(e.method.output, out), headers);
  }
}

/**
 * After answering before the body was read (413), tell the client to stop
 * sending: HTTP/1.1 closes the connection once the answer is out (the only
 * way to stop an upload), HTTP/2 resets just that stream with NO_ERROR.
 */
function stopUpload(req: NodeRequest, res: NodeResponse): void {
  if (req.httpVersionMajor >= 2) {
    res.once("finish", () => {
      const stream = (req as Http2ServerRequest).stream;
      if (!stream.destroyed && !req.complete) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
  }
}

export function createRestHandler(o: RestOptions): RestHandler {
  const inProcess = createInProcess(o.routes, o.interceptors);
  const table = new RouteTable(endpointsOf(inProcess.methods));

  const fallback: FallbackHandler = async (req, res) => {
    const url = req.url ?? "/";
    // Repeated slashes count as one: Octavia's controller joins a base URL
    // ending in "/" with the path "/", so its version discovery asks `GET //`
    // (Flask redirects that to "/"; a 404 there would make the controller
    // fall back to API 0.5 and fail every later call).
    const pathOnly = url.split("?")[0].replace(/\/{2,}/g, "/");
    let segments: string[];
    try {
      segments = splitPath(pathOnly).map((s) => decodeURIComponent(s));
    } catch {
      return false; // a path that does not decode is no route of ours: JSON 404
    }
    const verb = (req.method ?? "GET").toUpperCase();
    const m = table.match(verb, segments);
    if (m.kind === "none") return false;
    const peer = cachedPeerSubject(req, peerSubject);
    const started = performance.now();
    const logReject = (status: number, message: string, details: string) => {
      o.onReject?.(status);
      o.logger.warn({ protocol: "rest", peer, request: `${verb} ${pathOnly}`, status, err: message, details, ms: Math.round((performance.now() - started) * 10) / 10 }, "rest request refused");
    };

    if (m.kind === "wrong-verb") {
      const details = `${verb} is not allowed here; use ${m.allowed.join(", ")}`;
      logReject(405, "Method Not Allowed", details);
      sendJson(res, 405, errorBody("Method Not Allowed", details), { allow: m.allowed.join(", ") });
      return true;
    }

    const e = m.endpoint;
    let input: Message;
    try {
      input = await buildRequest(e, req, m.params);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        logReject(413, "Request Entity Too Large", err.message);
        // HTTP/1.1: close after answering, so the rest of the upload is not read.
        const close: Record<string, string> = req.httpVersionMajor === 1 ? { connection: "close" } : {};
        stopUpload(req, res);
        sendJson(res, 413, errorBody("Request Entity Too Large", err.message), close);
        return true;
      }
      if (err instanceof RestReject) {
        // An unusable request answers like a validation failure of the route.
        const status = err.status === 400 ? e.invalidStatus : err.status;
        logReject(status, err.message, err.details);
        sendJson(res, status, errorBody(err.message, err.details), err.headers);
        return true;
      }
      if (err instanceof ClientGone) {
        if (!res.writableEnded) res.end();
        return true;
      }
      throw err; // the server answers 500 JSON and logs it
    }

    const values = createContextValues().set(peerSubjectKey, peer).set(protocolKey, "rest");
    // Like the Connect adapter: a client that goes away cancels the call.
    const abort = new LazyAbort();
    let gone = false;
    const onClose = () => {
      if (res.writableEnded) return;
      gone = true;
      abort.abort();
    };
    res.once("close", onClose);
    try {
      const out = await inProcess.call(e.method, input, values, abort);
      if (!res.writableEnded && !gone) writeSuccess(e, res, out);
    } catch (err) {
      if (gone) {
        if (!res.writableEnded) res.end();
        return true;
      }
      const re = restError(err, e.invalidMessage, e.invalidStatus, e.preconditionStatus);
      sendJson(res, re.status, errorBody(re.message, re.details));
    } finally {
      res.off("close", onClose);
    }
    return true;
  };

  return { fallback, table };
}
