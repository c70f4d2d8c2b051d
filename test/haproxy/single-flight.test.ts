// Concurrent askers of the same key share one asking; later ones ask anew.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SingleFlight } from "../../src/haproxy/single-flight.js";

test("SingleFlight: concurrent callers share one run, a later caller starts a new one, failures reach every joiner", async () => {
  const f = new SingleFlight<number>();
  let runs = 0;
  let release!: () => void;
  const work = () => new Promise<number>((r) => {
    runs++;
    release = () => r(runs);
  });
  const a = f.run("lb1", work);
  const b = f.run("lb1", work);
  const other = f.run("lb2", async () => 99);
  release();
  assert.deepEqual(await Promise.all([a, b, other]), [1, 1, 99]);
  assert.equal(runs, 1);
  const c = f.run("lb1", work);
  release();
  assert.equal(await c, 2);
  const boom = () => Promise.reject(new Error("master CLI unreachable"));
  const e1 = f.run("lb1", boom);
  const e2 = f.run("lb1", async () => 0);
  await assert.rejects(e1, /unreachable/);
  await assert.rejects(e2, /unreachable/);
  assert.equal(await f.run("lb1", async () => 7), 7);
});
