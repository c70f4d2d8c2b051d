// The cap on stats bytes in flight across streams.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteBudget } from "../../src/stats/byte-budget.js";

test("waits for room, first come first served, oversized goes alone, abort leaves the line", async () => {
  const b = new ByteBudget(100);
  await b.acquire(60);
  const order: string[] = [];
  const big = b.acquire(500).then(() => order.push("big"));
  const small = b.acquire(10).then(() => order.push("small"));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, [], "both wait: the big one is first in line");
  const ac = new AbortController();
  const aborted = b.acquire(1, ac.signal).then(() => "got", () => "aborted");
  ac.abort();
  assert.equal(await aborted, "aborted");
  b.release(60);
  await big;
  assert.deepEqual(order, ["big"], "alone, although over the limit");
  assert.equal(b.inFlight, 500);
  b.release(500);
  await small;
  assert.deepEqual(order, ["big", "small"]);
  assert.equal(b.inFlight, 10);
  assert.equal(b.peak, 500);
});

test("a wait with an already aborted signal is refused at once with its reason (no wait forever)", async () => {
  const b = new ByteBudget(10);
  assert.equal(b.tryAcquire(10), true);
  const why = new Error("gone");
  const ac = new AbortController();
  ac.abort(why);
  await assert.rejects(b.acquire(5, ac.signal), (e) => e === why);
  b.release(10);
  assert.equal(b.tryAcquire(10), true, "the refused wait left nothing in the line");
});
