// Answers read into a kept AnswerBuffer (see master-cli.ts): exact bytes
// after growing, after a smaller answer than the previous one, and with
// two reads in flight at once (every read first lands in one shared chunk,
// so each must be copied out before the next). The peers are real unix
// socket servers that answer like haproxy's master CLI: they read the
// command, write the answer in pieces, and close.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { AnswerBuffer, masterCommandInto } from "../../src/haproxy/master-cli.js";

const dir = mkdtempSync(join(tmpdir(), "amt-answer-"));
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A socket that answers every command with `answer()`, written in pieces of up to 50 KB with pauses. */
async function peer(name: string, answer: () => Buffer): Promise<string> {
  const path = join(dir, name);
  // Half-open, as haproxy: the client ends its side after the command.
  const srv = createServer({ allowHalfOpen: true }, (c) => {
    c.once("data", async () => {
      const a = answer();
      for (let p = 0; p < a.length; p += 50_000) {
        c.write(a.subarray(p, p + 50_000));
        await new Promise((r) => setImmediate(r));
      }
      c.end();
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(path, r));
  return path;
}

test("AnswerBuffer keeps exactly the last answer across growth and shrinking", () => {
  const b = new AnswerBuffer();
  const big = randomBytes(300_000);
  for (let p = 0; p < big.length; p += 65_536) b.append(big.subarray(p, p + 65_536), Math.min(65_536, big.length - p));
  assert.ok(b.bytes.equals(big));
  b.reset();
  const small = Buffer.from("# pxname,svname\nA,B\n");
  b.append(small, small.length);
  assert.ok(b.bytes.equals(small), "no stale tail of the bigger answer");
});

test("masterCommandInto: exact answers, one buffer reused, two reads in flight at once", async () => {
  const one = randomBytes(1_500_000);
  const two = randomBytes(700_000);
  let firstSize = one;
  const a = await peer("a.sock", () => firstSize);
  const b = await peer("b.sock", () => two);
  const intoA = new AnswerBuffer();
  const intoB = new AnswerBuffer();
  const [ra, rb] = await Promise.all([masterCommandInto(a, "@1 show stat", intoA), masterCommandInto(b, "@1 show stat", intoB)]);
  assert.ok(ra.equals(one), "a's answer intact");
  assert.ok(rb.equals(two), "b's answer intact");
  // The same buffer, a smaller answer.
  firstSize = one.subarray(0, 1234);
  assert.ok(intoA.capacity >= one.length);
  assert.ok((await masterCommandInto(a, "@1 show stat", intoA)).equals(one.subarray(0, 1234)));
  // Held on to for that one read; given back at the next.
  assert.ok((await masterCommandInto(a, "@1 show stat", intoA)).equals(one.subarray(0, 1234)));
  assert.ok(intoA.capacity < 64 * 1024, `a load balancer that shrank does not keep its old size (${intoA.capacity} bytes)`);
});
