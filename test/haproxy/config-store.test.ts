// The config store alone (no haproxy, no processes): versions, the upload's
// two writes and their undo, crash recovery, last good and rollback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { lbPaths } from "../../src/haproxy/layout.js";
import { markGood, md5, noteAction, recoverStored, rollBack, saveMeta, storeConfig } from "../../src/haproxy/config-store.js";
import { readMeta, HISTORY_LENGTH } from "../../src/haproxy/meta.js";
import { silentLogger } from "../../src/log.js";
import type { TestContext } from "node:test";

function dirs(t: TestContext) {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-cstore-"));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const lbId = randomUUID();
  return { lbId, paths: lbPaths(stateDir, join(stateDir, "certs"), lbId) };
}

const now = () => performance.now();

test("versions go up by one per upload; metadata and config agree; history is bounded", async (t) => {
  const { lbId, paths } = dirs(t);
  let meta = await storeConfig(paths, undefined, lbId, "amph", "a\n", now(), silentLogger);
  assert.equal(meta.version, 1);
  assert.equal(readFileSync(paths.config, "utf8"), "a\n");
  for (let i = 0; i < HISTORY_LENGTH + 5; i++) meta = await storeConfig(paths, meta, lbId, "amph", `c${i}\n`, now(), silentLogger);
  assert.equal(meta.version, HISTORY_LENGTH + 6);
  const onDisk = await readMeta(paths.meta);
  assert.equal(onDisk?.version, meta.version);
  assert.equal(onDisk?.md5, md5(readFileSync(paths.config, "utf8")));
  assert.equal(onDisk?.history?.length, HISTORY_LENGTH);
});

test("a config write that fails puts the previous metadata back (removes it for a new load balancer) and leaves no temp file", async (t) => {
  const { lbId, paths } = dirs(t);
  // haproxy.cfg as a folder: the rename over it fails.
  mkdirSync(join(paths.config, "x"), { recursive: true });
  await assert.rejects(storeConfig(paths, undefined, lbId, "amph", "a\n", now(), silentLogger), /Could not store the configuration/);
  // The folder existed (the test made it): kept, but no metadata and no temp file.
  assert.deepEqual(readdirSync(paths.dir), ["haproxy.cfg"]);
  rmSync(paths.dir, { recursive: true });
  const meta = await storeConfig(paths, undefined, lbId, "amph", "a\n", now(), silentLogger);
  rmSync(paths.config);
  mkdirSync(join(paths.config, "x"), { recursive: true });
  await assert.rejects(storeConfig(paths, meta, lbId, "amph", "b\n", now(), silentLogger));
  assert.equal((await readMeta(paths.meta))?.version, 1, "the previous metadata is back");
  assert.deepEqual(readdirSync(paths.dir).filter((f) => f.endsWith(".tmp")), []);
});

test("a metadata write that fails changes nothing and leaves no temp file", async (t) => {
  const { lbId, paths } = dirs(t);
  // meta.json as a folder: the rename over it fails.
  mkdirSync(join(paths.meta, "x"), { recursive: true });
  await assert.rejects(storeConfig(paths, undefined, lbId, "amph", "a\n", now(), silentLogger), (e: Error & { details?: string }) => /metadata not written/.test(e.details ?? ""));
  assert.deepEqual(readdirSync(paths.dir), ["meta.json"]);
});

test("crash recovery: a config whose md5 does not match the metadata gets the next version; lost metadata gets the clock floor and wanted running if a pid file is left; temp files go", async (t) => {
  const { lbId, paths } = dirs(t);
  const meta = await storeConfig(paths, undefined, lbId, "amph", "a\n", now(), silentLogger);
  await storeConfig(paths, meta, lbId, "amph", "b\n", now(), silentLogger);
  // A crash between the metadata and the config write of a third upload.
  writeFileSync(paths.config, "c\n");
  writeFileSync(join(paths.dir, ".meta.json.abc.tmp"), "half");
  let r = await recoverStored(lbId, paths, silentLogger);
  assert.equal(r?.meta.version, 3);
  assert.equal(r?.meta.md5, md5("c\n"));
  assert.equal(existsSync(join(paths.dir, ".meta.json.abc.tmp")), false);
  // Metadata lost; the pid file says haproxy ran.
  writeFileSync(paths.meta, "");
  writeFileSync(paths.pidFile, "123\n");
  const before = Date.now();
  r = await recoverStored(lbId, paths, silentLogger);
  assert.ok(r!.meta.version >= before, "above every version handed out");
  assert.equal(r?.meta.wanted, "running");
  // No config: nothing to adopt.
  rmSync(paths.config);
  assert.equal(await recoverStored(lbId, paths, silentLogger), undefined);
});

test("last good and rollback: none when the stored one is the good one, missing when the copy is damaged, done as a new version otherwise", async (t) => {
  const { lbId, paths } = dirs(t);
  let meta = await storeConfig(paths, undefined, lbId, "amph", "good\n", now(), silentLogger);
  assert.deepEqual(await rollBack(paths, meta), { kind: "none" }, "no last good yet");
  await markGood(paths, meta);
  assert.equal(readFileSync(paths.lastGood, "utf8"), "good\n");
  assert.deepEqual(meta.served, { version: 1, md5: md5("good\n") });
  assert.deepEqual(await rollBack(paths, meta), { kind: "none" });
  meta = await storeConfig(paths, meta, lbId, "amph", "bad\n", now(), silentLogger);
  const r = await rollBack(paths, meta);
  assert.equal(r.kind, "done");
  assert.equal(readFileSync(paths.config, "utf8"), "good\n");
  assert.equal(meta.version, 3, "a rollback is a new version");
  assert.equal(meta.md5, md5("good\n"));
  noteAction(meta, "RELOAD", false, "reload failed", now());
  await saveMeta(paths, meta);
  assert.equal((await readMeta(paths.meta))?.lastAction, "reload failed");
  // A damaged last-good copy: nothing is rolled back.
  meta = await storeConfig(paths, meta, lbId, "amph", "bad again\n", now(), silentLogger);
  writeFileSync(paths.lastGood, "tampered\n");
  assert.deepEqual(await rollBack(paths, meta), { kind: "missing" });
  assert.equal(readFileSync(paths.config, "utf8"), "bad again\n");
});
