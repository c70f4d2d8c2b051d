// The agent's glue between node's HTTP server and Connect's handlers
// (src/transport/rpc-adapter.ts), served by the real agent server over
// mutual TLS, with test implementations that record what their handler
// context saw: the call's URL and headers, why its signal aborted when the
// client went away (HTTP/2 reset, HTTP/1.1 socket closed), and that a
// stream whose client stops reading waits instead of buffering, then ends
// when the client resets it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import http2 from "node:http2";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { EventService, WatchEventsResponseSchema } from "../../src/gen/amphora/v1/events_pb.js";
import { create } from "@bufbuild/protobuf";
import { ensureDevPki } from "../../src/agent/dev-pki.js";
import { createAgentServer, type AgentServer } from "../../src/transport/server.js";
import { silentLogger } from "../../src/log.js";
import { connectionError, resetError, rpcAdapter } from "../../src/transport/rpc-adapter.js";
import { createContextValues } from "@connectrpc/connect";
import { envelope } from "../support/raw-rpc.js";

let dir: string;
let server: AgentServer;
let url: string;
let id: { ca: string; cert: string; key: string };

interface Seen {
  url?: string;
  probe?: string | null;
}
const unary: Seen = {};
// Each WatchEvents call: its signal, how many messages it made, whether it ended.
interface StreamCall {
  ctx: HandlerContext;
  made: number;
  ended: boolean;
}
const streams: StreamCall[] = [];
const BIG = "x".repeat(4096);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "amphora-rpc-adapter-"));
  const { paths } = await ensureDevPki(join(dir, "pki"), "rpc-adapter-test");
  const read = (f: string) => readFileSync(f, "utf8");
  id = { ca: read(paths.ca), cert: read(paths.clientCert), key: read(paths.clientKey) };
  server = createAgentServer({
    tls: { ca: read(paths.ca), cert: read(paths.serverCert), key: read(paths.serverKey) },
    logger: silentLogger,
    interceptors: [],
    routes: (router) => {
      router.service(SystemService, {
        getApiVersion(_req, ctx) {
          unary.url = ctx.url;
          unary.probe = ctx.requestHeader.get("x-probe");
          ctx.responseHeader.set("x-answer", "from-the-handler");
          return { apiVersion: "test" };
        },
      });
      router.service(EventService, {
        async *watchEvents(_req, ctx) {
          const call: StreamCall = { ctx, made: 0, ended: false };
          streams.push(call);
          try {
            // Messages as fast as the response takes them, until the call ends.
            while (!ctx.signal.aborted) {
              call.made++;
              yield create(WatchEventsResponseSchema, { message: { case: "event", value: { seq: BigInt(call.made), summary: BIG } } });
              if (call.made % 64 === 0) await sleep(0);
            }
          } finally {
            call.ended = true;
          }
        },
      });
    },
  });
  const a = await server.listen("127.0.0.1", 0);
  url = `https://127.0.0.1:${a.port}`;
});

after(async () => {
  await server?.close(500);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean, ms = 5000, everyMs = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(everyMs);
  }
}

test("a unary call sees its URL and headers; headers it sets are answered", async () => {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2", nodeOptions: id });
  let answered: string | null = null;
  const r = await createClient(SystemService, transport).getApiVersion({}, { headers: { "x-probe": "p1" }, onHeader: (h) => (answered = h.get("x-answer")) });
  assert.equal(r.apiVersion, "test");
  assert.equal(unary.url, `${url}/amphora.v1.SystemService/GetApiVersion`);
  assert.equal(unary.probe, "p1");
  assert.equal(answered, "from-the-handler");
});

/** GetApiVersion over HTTP/1.1 (Connect GET) with the given Host header. */
function h1Get(host: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: u.hostname, port: u.port, servername: "localhost", method: "GET", path: "/amphora.v1.SystemService/GetApiVersion?encoding=json&message=%7B%7D", headers: { host }, agent: false, ...id },
      (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

test("the call's URL is built from the authority as sent, or from localhost when it is not a host", async () => {
  for (const [host, expect] of [
    ["amphora.example:9443", "https://amphora.example:9443"],
    ["[2001:db8::1]:9443", "https://[2001:db8::1]:9443"],
    ["AMPHORA.example", "https://amphora.example"],
    ["not a host!", "https://localhost"],
    ["amphora.example:19443", "https://amphora.example:19443"],
    ["amphora.example:99999", "https://localhost"],
  ] as const) {
    const r = await h1Get(host).catch((e: Error) => { throw new Error(`${host}: ${e.message}`); });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { apiVersion: "test" });
    assert.equal(new URL(unary.url!).origin, expect, host);
    assert.equal(new URL(unary.url!).searchParams.get("encoding"), "json");
  }
});

/** Opens WatchEvents (Connect streaming, binary) on `s` without reading it. */
function openStream(s: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const st = s.request({ ":method": "POST", ":path": "/amphora.v1.EventService/WatchEvents", "content-type": "application/connect+proto" });
  st.end(envelope(Buffer.alloc(0)));
  return st;
}

test("a stream whose client stops reading waits for it; a reset ends the call, canceled", async () => {
  const s = http2.connect(url, { ...id });
  try {
    const before = streams.length;
    const st = openStream(s);
    st.pause(); // read nothing
    await until("the stream starts", () => streams.length > before);
    const call = streams[before]!;
    // The writer waits for room: the count stops growing well before
    // anything like the whole stream (it would never stop without waiting).
    let last = -1;
    await until("the server stops making messages", () => {
      const stalled = call.made === last && call.made > 0;
      last = call.made;
      return stalled;
    }, 10_000, 200);
    assert.ok(call.made < 2000, `made ${call.made} messages of ${BIG.length} bytes for a client that read none`);
    assert.equal(call.ended, false);

    st.close(http2.constants.NGHTTP2_CANCEL);
    await until("the call ends", () => call.ended);
    const reason = ConnectError.from(call.ctx.signal.reason);
    assert.equal(reason.code, Code.Canceled, String(call.ctx.signal.reason));
    assert.match(reason.message, /CANCEL/);
  } finally {
    s.destroy();
  }
});

test("an HTTP/1.1 client that closes its socket mid-stream aborts the call", async () => {
  const u = new URL(url);
  const before = streams.length;
  const req = https.request({
    host: u.hostname, port: u.port, method: "POST", path: "/amphora.v1.EventService/WatchEvents", agent: false, ...id,
    headers: { "content-type": "application/connect+json" },
  });
  req.on("error", () => {});
  req.on("response", (res) => res.once("data", () => req.destroy()));
  req.end(envelope(Buffer.from("{}")));
  await until("the stream starts", () => streams.length > before);
  const call = streams[before]!;
  await until("the call ends", () => call.ended);
  assert.ok(call.ctx.signal.aborted);
  assert.ok([Code.Canceled, Code.Aborted].includes(ConnectError.from(call.ctx.signal.reason).code), String(call.ctx.signal.reason));
});

test("a request that makes the glue throw is answered internal; the server serves the next call", async () => {
  // The adapter alone on a plain HTTP/2 server (what is tested is the
  // listener never throwing, not TLS), with a context that throws when
  // asked to by a header.
  const heard: string[] = [];
  const listener = rpcAdapter({
    routes: (r) => r.service(SystemService, { getApiVersion: () => ({ apiVersion: "plain" }) }),
    contextValues: (req) => {
      if (req.headers["x-explode"]) throw new Error("context failed");
      return createContextValues();
    },
    fallback: (_req, res) => res.end(),
    onFailure: (method, err) => heard.push(`${method}: ${err.rawMessage}`),
  });
  const plain = http2.createServer(listener);
  // The client keeps its session open for minutes; close() would wait for it.
  const sessions = new Set<http2.ServerHttp2Session>();
  plain.on("session", (s) => sessions.add(s));
  await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
  const uncaught: Error[] = [];
  const onUncaught = (e: Error) => uncaught.push(e);
  process.on("uncaughtException", onUncaught);
  try {
    const port = (plain.address() as { port: number }).port;
    const client = createClient(SystemService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "2" }));
    const err = await client.getApiVersion({}, { headers: { "x-explode": "1" }, timeoutMs: 5000 }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    assert.equal(err?.code, Code.Internal, String(err));
    assert.deepEqual(heard, ["amphora.v1.SystemService/GetApiVersion: context failed"]);
    assert.equal((await client.getApiVersion({})).apiVersion, "plain");
    assert.deepEqual(uncaught, []);
  } finally {
    process.off("uncaughtException", onUncaught);
    for (const s of sessions) s.destroy();
    await new Promise<void>((r) => plain.close(() => r()));
  }
});

test("HTTP/2 reset codes map as gRPC's HTTP/2 transport specifies; an ordinary close is no error", () => {
  const c = http2.constants;
  assert.equal(resetError(c.NGHTTP2_NO_ERROR), undefined);
  assert.equal(resetError(c.NGHTTP2_STREAM_CLOSED), undefined);
  assert.equal(resetError(undefined), undefined);
  assert.equal(resetError(c.NGHTTP2_CANCEL)?.code, Code.Canceled);
  assert.equal(resetError(c.NGHTTP2_REFUSED_STREAM)?.code, Code.Unavailable);
  assert.equal(resetError(c.NGHTTP2_ENHANCE_YOUR_CALM)?.code, Code.ResourceExhausted);
  assert.equal(resetError(c.NGHTTP2_INADEQUATE_SECURITY)?.code, Code.PermissionDenied);
  assert.equal(resetError(c.NGHTTP2_PROTOCOL_ERROR)?.code, Code.Internal);
  assert.match(resetError(c.NGHTTP2_REFUSED_STREAM)!.message, /REFUSED_STREAM, 0x7/);
});

test("a client gone is aborted, anything else internal, with the cause kept", () => {
  const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
  assert.equal(connectionError(reset).code, Code.Aborted);
  assert.equal(connectionError(new Error("wrapped", { cause: reset })).code, Code.Aborted);
  const other = Object.assign(new Error("disk"), { code: "EIO" });
  const e = connectionError(other);
  assert.equal(e.code, Code.Internal);
  assert.equal(e.cause, other);
  const ce = new ConnectError("mine", Code.NotFound);
  assert.equal(connectionError(ce), ce);
});
