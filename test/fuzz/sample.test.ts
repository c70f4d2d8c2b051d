// A small seeded sample of `npm run fuzz` (fuzz/run.ts): the same
// generator, harness and assertions, in its own network namespace, with a
// fixed seed so a failure here reproduces with `npm run fuzz -- --seed 20261203 --cases 400`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

test("a seeded fuzz sample through every front door: no crash, no server fault for a client error, nothing outside the state dir, no process left", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "fuzz/run.ts", "--seed", "20261203", "--cases", "400", "--concurrency", "4"], {
    encoding: "utf8",
    timeout: 240_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  assert.match(out, /fuzz: seed 20261203, 400 cases over \d+ methods/, out);
  const doors = JSON.parse(/by door: (\{.*\})/.exec(out)![1]!) as Record<string, number>;
  assert.deepEqual(Object.keys(doors).sort(), ["connect-json", "connect-proto", "grpc", "grpc-web", "rest"]);
});
