// Pure pieces of the haproxy module: peer names, `show proc`, config facts,
// frontend statuses, the user/group file, the per-LB lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { peerName } from "../../src/haproxy/peer-name.js";
import { parseShowProc } from "../../src/haproxy/show-proc.js";
import { currentWorker } from "../../src/haproxy/master.js";
import { parseConfigFacts } from "../../src/haproxy/config-facts.js";
import { frontendStatuses } from "../../src/haproxy/frontend-status.js";
import { userGroupConfig } from "../../src/haproxy/user-group.js";
import { KeyedLock } from "../../src/system/keyed-lock.js";
import { lbPaths } from "../../src/haproxy/layout.js";
import { DomainError } from "../../src/errors.js";

test("peer name: sha1 of the amphora id, base64 with + -> _ and / -> -, without '=', leading '-' becomes 'x'", () => {
  // Expected values from Octavia's own octavia.common.utils.base64_sha1_string (python3-octavia 11).
  assert.equal(peerName("3b4a7f3e-3c5e-4a7e-9a39-5b0a4e7d2c11"), "s6Ia8ANrM6Mrk1Qqk3bBlPj04Pw");
  assert.equal(peerName("00000000-0000-4000-8000-000000000061"), "_6OsjCX3jybNMQ0Zb95ACNBYPq4");
  assert.equal(peerName("00000000-0000-4000-8000-000000000010"), "uZTS0_jC16I8SDVVgZk3e-t2Iuk");
  assert.equal(peerName("00000000-0000-4000-8000-000000000017"), "xS2sYRNU9p-tCjP8uBgqQ_wv0NU");
});

test("show proc: master counters, current and lingering workers", () => {
  const text = [
    "#<PID>          <type>          <reloads>       <uptime>        <version>",
    "6180            master          3 [failed: 1]   0d01h02m03s     2.6.12-1+deb12u4",
    "# workers",
    "6300            worker          0               0d00h00m05s     2.6.12-1+deb12u4",
    "6250            worker          2               1d00h00m10s     2.6.12-1+deb12u4",
    "# programs",
    "",
  ].join("\n");
  const p = parseShowProc(text);
  assert.deepEqual(p.master, { pid: 6180, reloads: 3, failed: 1, uptimeSeconds: 3723 });
  assert.deepEqual(p.workers.map((w) => [w.pid, w.reloads, w.uptimeSeconds]), [[6300, 0, 5], [6250, 2, 86410]]);
  assert.equal(currentWorker(p)?.pid, 6300);
  // After a failed reload the only (current) worker has reloads=1.
  const failed = parseShowProc("6180 master 1 [failed: 1] 0d00h00m03s 2.6\n# workers\n6181 worker 1 0d00h00m03s 2.6\n");
  assert.equal(currentWorker(failed)?.pid, 6181);
  assert.throws(() => parseShowProc("Unknown command"));
});

test("config facts: listeners by frontend, type from mode and ssl crt, lb id from the first line", () => {
  const cfg = [
    "# Configuration for loadbalancer 0b5f7c1e-4a1e-4a59-9a0c-6a3c2c1d9e01",
    "global",
    "    server-state-file /var/lib/x/servers-state",
    "defaults",
    "    mode http",
    "frontend aaaaaaaa-0000-4000-8000-000000000001",
    "    bind 192.0.2.10:80",
    "frontend aaaaaaaa-0000-4000-8000-000000000002",
    "    mode tcp",
    "    bind 192.0.2.10:3306",
    "frontend aaaaaaaa-0000-4000-8000-000000000003",
    "    bind 192.0.2.10:443 ssl crt /var/lib/octavia/certs/x/y.pem  # comment",
    "    mode http",
    "backend p:aaaaaaaa-0000-4000-8000-000000000001",
    "    mode http",
    "    server m1 198.51.100.5:80",
    "defaults",
    "    mode tcp",
    "frontend aaaaaaaa-0000-4000-8000-000000000004",
    "    bind 192.0.2.10:8443 ssl crt-list /x/list",
    "    mode tcp",
  ].join("\n");
  const f = parseConfigFacts(cfg);
  assert.equal(f.lbId, "0b5f7c1e-4a1e-4a59-9a0c-6a3c2c1d9e01");
  assert.equal(f.serverStateFile, "/var/lib/x/servers-state");
  assert.deepEqual(f.listeners.map((l) => [l.id.slice(-1), l.type]), [["1", "HTTP"], ["2", "TCP"], ["3", "TERMINATED_HTTPS"], ["4", "TERMINATED_HTTPS"]]);
  assert.deepEqual(parseConfigFacts("frontend x\n    bind :80\n").listeners, [{ id: "x", type: "TCP" }], "haproxy's default mode is tcp");
});

test("frontend statuses from show stat CSV, by header names", () => {
  const csv = "# pxname,svname,qcur,status,type\nfe1,FRONTEND,,OPEN,0\nbe1,BACKEND,0,UP,1\nfe2,FRONTEND,,STOP,0\n";
  assert.deepEqual([...frontendStatuses(csv)], [["fe1", "OPEN"], ["fe2", "STOP"]]);
  assert.equal(frontendStatuses("garbage").size, 0);
});

test("user/group file: only the group (nogroup, else nobody's group by name), never a user", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amt-ug-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const passwd = join(dir, "passwd");
  const group = join(dir, "group");
  writeFileSync(passwd, "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n");
  writeFileSync(group, "root:x:0:\nnogroup:x:65534:\n");
  assert.deepEqual(await userGroupConfig(passwd, group), { text: "global\n    group nogroup\n", note: "" });
  writeFileSync(group, "root:x:0:\nnobody:x:65534:\n");
  const r = await userGroupConfig(passwd, group);
  assert.equal(r.text, "global\n    group nobody\n");
  assert.match(r.note, /nogroup does not exist/);
  writeFileSync(group, "root:x:0:\n");
  assert.equal((await userGroupConfig(passwd, group)).text, "global\n");
});

test("per-key lock: same key serialized, different keys in parallel, failures do not block the queue", async () => {
  const lock = new KeyedLock();
  const order: string[] = [];
  const a1 = lock.run("a", async () => { await sleep(60); order.push("a1"); });
  const a2 = lock.run("a", async () => { order.push("a2"); throw new Error("boom"); });
  const a3 = lock.run("a", async () => { order.push("a3"); return 3; });
  const b1 = lock.run("b", async () => { order.push("b1"); });
  await b1;
  assert.deepEqual(order, ["b1"], "b does not wait for a");
  await a1;
  await assert.rejects(a2, /boom/);
  assert.equal(await a3, 3);
  assert.deepEqual(order, ["b1", "a1", "a2", "a3"]);
});

test("layout: ids must be UUIDs, paths stay inside the state directory", () => {
  const p = lbPaths("/srv/state", "/srv/state/certs", "0B5F7C1E-4A1E-4A59-9A0C-6A3C2C1D9E01");
  assert.equal(p.dir, "/srv/state/lb/0b5f7c1e-4a1e-4a59-9a0c-6a3c2c1d9e01");
  assert.equal(p.masterSocket, "/srv/state/lb/0b5f7c1e-4a1e-4a59-9a0c-6a3c2c1d9e01/master.sock");
  for (const bad of ["..", "../../etc", "a/b", ""]) {
    assert.throws(() => lbPaths("/srv/state", "/srv/state/certs", bad), (e: unknown) => e instanceof DomainError && e.kind === "invalid");
  }
});
