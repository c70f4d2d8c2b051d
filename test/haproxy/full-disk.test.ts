// A full disk (issue 16 items 3 and 6), on a small tmpfs the test mounts as
// the state dir and unmounts at the end: a reload haproxy did is answered
// as done (with a warning that its record could not be written), the next
// agent start reconciles the record from what runs, and failed writes leave
// no temp files behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { LoadBalancerManager } from "../../src/haproxy/manager.js";
import { runChecked } from "../../src/system/exec.js";
import { freePort, httpGet, killHaproxiesUnder, octaviaConfig, waitForBody } from "../support/haproxy.js";

/** Fills the file system of `dir` until a write fails (ENOSPC). */
function fill(dir: string): string {
  const filler = join(dir, "filler");
  const chunk = Buffer.alloc(64 * 1024, 1);
  let n = 0;
  for (;;) {
    try {
      writeFileSync(filler, chunk, { flag: "a" });
      n++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      break;
    }
  }
  // Also the last partial page.
  for (;;) {
    try {
      writeFileSync(filler, "x", { flag: "a" });
    } catch {
      break;
    }
  }
  assert.ok(n > 0);
  return filler;
}

/** Temp files of atomic writes and haproxy -c candidates anywhere under `dir`. */
function strays(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tmp$/.test(e.name) || /^candidate-/.test(e.name)) out.push(p.slice(dir.length + 1));
    }
  };
  walk(dir);
  return out;
}

/** A started load balancer (version 1 served, version 2 stored) on a tmpfs state dir that is then filled. */
async function fullDiskLb(t: import("node:test").TestContext, o: { stopped?: boolean } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-full-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  await runChecked("mount", ["-t", "tmpfs", "-o", "size=2m,mode=700", "tmpfs", stateDir]);
  const managers: LoadBalancerManager[] = [];
  t.after(async () => {
    await Promise.all(managers.map((m) => m.close()));
    await killHaproxiesUnder(stateDir);
    await runChecked("umount", [stateDir]).catch(() => runChecked("umount", ["-l", stateDir]));
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  const open = async () => {
    const m = await LoadBalancerManager.open({ stateDir, certDir: join(stateDir, "certs"), settings: () => ({ haproxyCmd: "/usr/sbin/haproxy", netns: "" }), watchIntervalMs: 0 });
    managers.push(m);
    return m;
  };
  const m = await open();
  const lbId = randomUUID();
  const port = await freePort();
  const cfg = (body: string) => octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: body }] }).text;
  const amphoraId = randomUUID();
  await m.putConfig(amphoraId, lbId, cfg("one"));
  await m.control(lbId, "start");
  await m.putConfig(amphoraId, lbId, cfg("two"));
  const before = await m.status(lbId);
  assert.equal(before.servedVersion, 1);
  if (o.stopped) await m.control(lbId, "stop");
  const filler = fill(stateDir);
  return { stateDir, m, open, lbId, port, cfg, amphoraId, before, filler };
}

test("full disk: a failed upload and a reload whose record cannot be written leave no candidate or temp file behind", async (t) => {
  const { stateDir, m, lbId, cfg, amphoraId } = await fullDiskLb(t);
  const up = await m.putConfig(amphoraId, lbId, cfg("three")).then(() => undefined, (e: unknown) => e);
  assert.ok(up instanceof Error, "the upload fails on a full disk");
  assert.equal((await m.getConfig(lbId)).version, 2, "the stored config is unchanged");
  assert.deepEqual(strays(stateDir), [], "no candidate or temp file left by the failed upload");
  await m.control(lbId, "reload").catch(() => undefined);
  assert.deepEqual(strays(stateDir), [], "no temp file left by the failed record writes of a reload");
});

test("full disk: a reload haproxy did answers done with a warning that its record could not be written; the next agent start reconciles the record from what runs", async (t) => {
  const { m, open, lbId, port, before, filler } = await fullDiskLb(t);
  const r = await m.control(lbId, "reload");
  assert.equal(r.message, "OK");
  assert.match(r.details, /reloaded with config version 2 \(.+\); warning: its state could not be recorded/);
  await waitForBody(port, "two");
  const after = await m.status(lbId);
  assert.equal(after.reloads, before.reloads + 1, "the master reloaded");
  assert.equal(after.servedVersion, 2, "the agent knows what it serves");

  // The next agent start (space back) reconciles the record from what runs.
  rmSync(filler);
  await m.close();
  const m2 = await open();
  const st = await m2.status(lbId);
  assert.equal(st.state, "RUNNING");
  assert.equal(st.servedVersion, 2, "reconciled: the running worker loaded version 2");
  assert.match(st.recentActions[0]!.details, /reconciled/);
  assert.equal((await httpGet(port)).body, "two");
  assert.equal((await m2.control(lbId, "reload")).message, "OK");
});

test("full disk: a start haproxy did answers STORE_FAILED (the wanted state may not survive a reboot) and keeps that master: no second one, it serves", async (t) => {
  const { m, lbId, port } = await fullDiskLb(t, { stopped: true });
  await assert.rejects(m.control(lbId, "start"), (e: Error & { reason?: string }) => e.reason === "STORE_FAILED");
  assert.equal(m.get(lbId)!.running, true);
  assert.equal((await httpGet(port)).body, "two");
  assert.match((await m.control(lbId, "start")).details, /already running/);
  assert.equal((await m.status(lbId)).state, "RUNNING");
});
