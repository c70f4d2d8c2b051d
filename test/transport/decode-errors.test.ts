// A request body the agent cannot decode is the client's mistake:
// invalid_argument on every protocol, with a message naming what could not
// be decoded; never internal (gRPC 13, HTTP 500). connect-es reports binary
// decode failures as internal; src/transport/decode-errors.ts maps them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetInterfaceRequestSchema } from "../../src/gen/amphora/v1/network_pb.js";
import { WatchStatsRequestSchema } from "../../src/gen/amphora/v1/stats_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { connectH2, envelope, outcomeOf, rawRequest } from "../support/raw-rpc.js";

let agent: TestAgent;
let s: http2.ClientHttp2Session;

before(async () => {
  agent = await startTestAgent();
  s = await connectH2(agent.url, agent);
});
after(async () => {
  s?.close();
  await agent?.cleanup();
});

const UNARY = "/amphora.v1.NetworkService/GetInterface";
const STREAM = "/amphora.v1.StatsService/WatchStats";
const valid = Buffer.from(toBinary(GetInterfaceRequestSchema, create(GetInterfaceRequestSchema, { ip: "127.0.0.1" })));
const truncated = valid.subarray(0, valid.length - 3);
const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
const jsonBody = Buffer.from('{"ip":"127.0.0.1"}');
// 200 nested groups of an unknown field: past protobuf-es's recursion limit (100).
const nested = Buffer.concat([Buffer.alloc(200, 0x7b), Buffer.alloc(200, 0x7c)]);

const bodies: [string, Buffer][] = [
  ["truncated protobuf", truncated],
  ["garbage", garbage],
  ["a JSON body", jsonBody],
  ["nesting past the recursion limit", nested],
];

function assertDecodeError(ct: string, what: string, a: Awaited<ReturnType<typeof rawRequest>>, typeName: string | RegExp = "amphora.v1.GetInterfaceRequest") {
  const o = outcomeOf(ct, a);
  assert.equal(o.code, "invalid_argument", `${ct} with ${what}: ${JSON.stringify(o)}`);
  assert.ok(o.httpStatus < 500, `${ct} with ${what}: HTTP ${o.httpStatus}`);
  assert.match(o.message, /could not decode/, `${ct} with ${what}: the message says what failed: ${o.message}`);
  assert.match(o.message, typeof typeName === "string" ? new RegExp(typeName.replace(/\./g, "\\.")) : typeName);
}

test("unary: a body that is no binary protobuf answers invalid_argument on Connect, gRPC and gRPC-Web", async () => {
  for (const [what, body] of bodies) {
    assertDecodeError("application/proto", what, await rawRequest(s, UNARY, "application/proto", body));
    for (const ct of ["application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto"]) {
      assertDecodeError(ct, what, await rawRequest(s, UNARY, ct, envelope(body)));
    }
  }
});

test("Connect GET with a binary message that does not decode answers invalid_argument", async () => {
  const q = `?encoding=proto&base64=1&connect=v1&message=${encodeURIComponent(garbage.toString("base64url"))}`;
  const a = await rawRequest(s, UNARY + q, undefined, "", {}, "GET");
  assertDecodeError("application/proto", "a GET message", a);
});

test("bad envelopes: no message, two messages, or a compressed flag without a compression answer invalid_argument", async () => {
  for (const ct of ["application/grpc", "application/grpc-web+proto"]) {
    assertDecodeError(ct, "no message", await rawRequest(s, UNARY, ct, Buffer.alloc(0)));
    assertDecodeError(ct, "two messages", await rawRequest(s, UNARY, ct, Buffer.concat([envelope(valid), envelope(valid)])));
    assertDecodeError(ct, "a compressed flag", await rawRequest(s, UNARY, ct, envelope(valid, 1)));
    // Already invalid_argument in connect-es; kept so it stays so.
    const o = outcomeOf(ct, await rawRequest(s, UNARY, ct, Buffer.from([0, 0, 0, 0, 9, 1])));
    assert.equal(o.code, "invalid_argument", `${ct} with a truncated envelope: ${JSON.stringify(o)}`);
  }
});

test("server streaming: an undecodable WatchStats request answers invalid_argument on every protocol", async () => {
  for (const [what, body] of bodies) {
    for (const ct of ["application/connect+proto", "application/grpc", "application/grpc-web+proto"]) {
      assertDecodeError(ct, what, await rawRequest(s, STREAM, ct, envelope(body), { "connect-timeout-ms": "3000", "grpc-timeout": "3S" }), /request/);
    }
  }
  // A valid request is served (the mapping leaves other answers alone): it runs until its deadline.
  const ok = await rawRequest(s, STREAM, "application/grpc", envelope(Buffer.from(toBinary(WatchStatsRequestSchema, create(WatchStatsRequestSchema, { intervalMs: 100 })))), { "grpc-timeout": "300m" });
  const o = outcomeOf("application/grpc", ok);
  assert.ok(o.code === "ok" || o.code === "deadline_exceeded", JSON.stringify(o));
});

test("with a compression negotiated, an undecodable request still answers invalid_argument (found by npm run fuzz)", async () => {
  // The client names gzip for its messages (and so accepts it): the answer
  // carries grpc-encoding / connect-content-encoding, its small error
  // trailer is not compressed, and is rewritten all the same.
  for (const [what, body] of bodies) {
    for (const ct of ["application/grpc", "application/grpc-web+proto"]) {
      assertDecodeError(ct, `${what}, grpc-encoding gzip`, await rawRequest(s, UNARY, ct, envelope(body), { "grpc-encoding": "gzip" }));
    }
    assertDecodeError("application/connect+proto", `${what}, connect-content-encoding gzip`,
      await rawRequest(s, STREAM, "application/connect+proto", envelope(body), { "connect-content-encoding": "gzip", "connect-timeout-ms": "3000" }), /request/);
  }
  // A unary body that says gzip but is cut short: zlib's Z_BUF_ERROR, which
  // connect-es answered internal ("decompression failed").
  const { gzipSync } = await import("node:zlib");
  const cut = gzipSync(jsonBody).subarray(0, 12);
  for (const ct of ["application/json", "application/proto"]) {
    const a = await rawRequest(s, UNARY, ct, cut, { "content-encoding": "gzip" });
    const o = outcomeOf(ct, a);
    assert.equal(o.code, "invalid_argument", `${ct}: ${JSON.stringify(o)}`);
    assert.match(o.message, /could not decompress/);
  }
});

test("Connect JSON and REST: a body that is no JSON answers 400 invalid_argument naming the message", async () => {
  const a = await rawRequest(s, UNARY, "application/json", Buffer.from('{"ip": "127.'));
  const o = outcomeOf("application/json", a);
  assert.equal(o.code, "invalid_argument");
  assert.equal(a.status, 400);
  assert.match(o.message, /amphora\.v1\.GetInterfaceRequest/);
  const r = await rawRequest(s, "/1.0/interface/192.0.2.1/rules", "application/json", garbage, {}, "PUT");
  assert.equal(r.status, 400, r.body.toString());
  assert.match(r.body.toString(), /not valid JSON|utf-8/i);
});

test("the agent still answers after every malformed request", async () => {
  const a = await rawRequest(s, UNARY, "application/proto", valid);
  assert.equal(a.status, 200);
});
