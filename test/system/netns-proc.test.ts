// Another namespace's /proc/net/dev is read through a process living in it,
// not by running `cat` inside it per read; a program runs only while no
// process lives there. Real namespaces and veths (test/network/netns.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { NetnsProcFiles, catInNetns } from "../../src/system/netns-proc.js";
import { parseNetDev } from "../../src/system/info.js";
import { Topology } from "../network/netns.js";

test("/proc/net/dev of a namespace: read through a process in it, a program only when none lives there", async (t) => {
  const topo = new Topology();
  t.after(() => topo.cleanup());
  const ns = await topo.netns();
  const other = await topo.netns();
  await topo.veth(ns, "perfa0", other, "perfb0");
  let ran = 0;
  const files = new NetnsProcFiles(async (n, f) => {
    ran++;
    return catInNetns(n, f);
  });

  // Nobody lives in the namespace yet: the program runs, and still sees its interfaces.
  assert.deepEqual([...parseNetDev(await files.read(ns, "dev")).keys()].sort(), ["lo", "perfa0"]);
  assert.equal(ran, 1);

  // A process in the namespace (as haproxy or keepalived would be).
  const sleeper = spawn("ip", ["netns", "exec", ns, "sleep", "60"], { stdio: "ignore" });
  t.after(() => sleeper.kill("SIGKILL"));
  await new Promise((r) => setTimeout(r, 1100)); // the search for a process runs at most once a second
  for (let i = 0; i < 20; i++) {
    const devs = parseNetDev(await files.read(ns, "dev"));
    assert.deepEqual([...devs.keys()].sort(), ["lo", "perfa0"]);
  }
  assert.equal(ran, 1, "no program ran while a process lives in the namespace");
  // The other namespace is its own: its window is not this one's.
  assert.deepEqual([...parseNetDev(await files.read(other, "dev")).keys()].sort(), ["lo", "perfb0"]);

  // The process ends: the reader notices and falls back, still right.
  const before = ran;
  sleeper.kill("SIGKILL");
  await new Promise((r) => sleeper.once("exit", r));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual([...parseNetDev(await files.read(ns, "dev")).keys()].sort(), ["lo", "perfa0"]);
  assert.equal(ran, before + 1);
});
