// Program versions are read once per installed file: GET /1.0/info no longer
// runs `haproxy -v` and `keepalived -v` per call, and a replaced binary (a
// package upgrade: new inode and mtime) is asked again once the answer is
// a second old.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { haproxyVersion } from "../../src/system/info.js";

test("haproxy's version: asked once, asked again when the binary is replaced", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amphora-perf-version-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, "haproxy");
  const calls = join(dir, "calls");
  writeFileSync(calls, "");
  // A stand-in haproxy that counts its runs (the real one's -v output shape).
  const install = (version: string) => {
    const tmp = join(dir, "haproxy.new");
    writeFileSync(tmp, `#!/bin/sh\necho x >> ${calls}\necho "HAProxy version ${version} 2023/01/01 - https://haproxy.org/"\n`);
    chmodSync(tmp, 0o755);
    renameSync(tmp, bin); // as dpkg replaces a file: a new inode
  };
  const runs = () => readFileSync(calls, "utf8").split("\n").filter(Boolean).length;
  install("2.6.12-1");
  assert.equal(await haproxyVersion(bin), "2.6.12-1");
  const all = await Promise.all(Array.from({ length: 5 }, () => haproxyVersion(bin)));
  assert.deepEqual(all, Array(5).fill("2.6.12-1"));
  assert.equal(runs(), 1, "one run for six questions");

  install("2.6.13-1");
  await new Promise((r) => setTimeout(r, 1100)); // the file is looked at again after a second
  assert.equal(await haproxyVersion(bin), "2.6.13-1");
  assert.equal(await haproxyVersion(bin), "2.6.13-1");
  assert.equal(runs(), 2);
});
