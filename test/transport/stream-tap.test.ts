// tapStream: what the call's log line and the decode-error rewrite rely on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tapStream } from "../../src/transport/stream-tap.js";

async function* source(items: number[], failWith?: Error) {
  for (const x of items) yield x;
  if (failWith) throw failWith;
}

test("items pass mapped, onEnd is called once at the end", async () => {
  let ended = 0;
  const out: number[] = [];
  for await (const x of tapStream(source([1, 2, 3]), { map: (x) => x * 10, onEnd: () => ended++ })) out.push(x);
  assert.deepEqual(out, [10, 20, 30]);
  assert.equal(ended, 1);
});

test("a failing source: onError is called once and what it returns is thrown; onEnd is not called", async () => {
  const calls: string[] = [];
  const it = tapStream(source([1], new Error("boom")), { onEnd: () => calls.push("end"), onError: (e) => (calls.push(`error ${(e as Error).message}`), new Error("mapped")) });
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const x of it) seen.push(x);
  }, /mapped/);
  assert.deepEqual(seen, [1]);
  assert.deepEqual(calls, ["error boom"]);
});

test("a consumer that stops early tells the source and reports neither end nor error", async () => {
  let finalized = false;
  async function* src() {
    try {
      yield 1;
      yield 2;
    } finally {
      finalized = true;
    }
  }
  const calls: string[] = [];
  for await (const x of tapStream(src(), { onEnd: () => calls.push("end"), onError: () => calls.push("error") })) {
    assert.equal(x, 1);
    break;
  }
  assert.ok(finalized, "the source's finally ran");
  assert.deepEqual(calls, []);
});
