// The call's log line, written as one string (callLineWriter), is the line
// pino would write for the same fields: same keys, order, level, bindings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { pino } from "pino";
import { callLineWriter } from "../../src/log.js";

function capture() {
  const lines: string[] = [];
  const stream = { write: (s: string) => (lines.push(s), true) };
  return { lines, logger: pino({ base: { svc: "amphora-agent" }, level: "info" }, stream as unknown as Writable) };
}

test("the same line as logger.info({...fields, outcome}, msg), time aside", () => {
  const a = capture();
  const b = capture();
  const fields = { method: "amphora.v1.SystemService/GetApiVersion", protocol: "connect+proto", peer: 'CN=ctl "a",O=x\\y', ms: 0.4 };
  callLineWriter(a.logger.child({}, { redact: [] }), "rpc")(fields, "ok");
  b.logger.child({}, { redact: [] }).info({ ...fields, outcome: "ok" }, "rpc");
  const strip = (l: string) => l.replace(/"time":\d+/, '"time":0');
  assert.equal(a.lines.length, 1);
  assert.equal(strip(a.lines[0]!), strip(b.lines[0]!));
  assert.deepEqual(Object.keys(JSON.parse(a.lines[0]!)), ["level", "time", "svc", "method", "protocol", "peer", "ms", "outcome", "msg"]);
});

test("an undefined peer is left out, as pino leaves it out; nothing is written below info", () => {
  const a = capture();
  const b = capture();
  callLineWriter(a.logger, "rpc")({ method: "m", protocol: "rest", peer: undefined, ms: 1 }, "canceled");
  b.logger.info({ method: "m", protocol: "rest", peer: undefined, ms: 1, outcome: "canceled" }, "rpc");
  assert.equal(a.lines[0]!.replace(/"time":\d+/, ""), b.lines[0]!.replace(/"time":\d+/, ""));
  const quiet = capture();
  quiet.logger.level = "warn";
  callLineWriter(quiet.logger, "rpc")({ method: "m", protocol: "rest", peer: "p", ms: 1 }, "ok");
  assert.deepEqual(quiet.lines, []);
});
