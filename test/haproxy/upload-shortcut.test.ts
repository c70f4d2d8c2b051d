// The upload shortcut (issue 13): a member-only change of the stored,
// validated config is checked by the config model instead of `haproxy -c`,
// but never instead of the config policy, which every upload passes first.
// No haproxy runs: `haproxy -c` is made impossible (the haproxy command is
// read at every use) to see which uploads still need it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { ConfigPolicy } from "../../src/haproxy/config-policy.js";
import { managerDirs } from "../support/lb-test.js";

function cfg(lbId: string, socketDir: string, weight: number, timeout = "50s"): string {
  return [
    "global",
    "    maxconn 4096",
    `    stats socket ${socketDir}/extra.sock mode 0666 level user`,
    "defaults",
    "    mode http",
    `    timeout client ${timeout}`,
    "    timeout server 50s",
    "    timeout connect 5s",
    `frontend ${lbId}`,
    "    bind 192.0.2.10:8080",
    "    default_backend pool",
    "backend pool",
    "    balance roundrobin",
    `    server a 192.0.2.1:80 weight ${weight} check inter 5s`,
    "    server b 192.0.2.2:80 weight 1 check inter 5s",
    "",
  ].join("\n");
}

test("a member-only upload skips haproxy -c, not the config policy; other changes still go to haproxy -c", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  let haproxyCmd = "/usr/sbin/haproxy";
  // The operator allows runDir (config_policy_paths), then takes it back.
  const policy: ConfigPolicy = { enabled: true, stateDir, certDir: `${stateDir}/certs`, extraPaths: [runDir] };
  const m = await open({ settings: () => ({ haproxyCmd, netns: "" }), policy: () => policy });
  const amp = randomUUID();
  const lbId = randomUUID();
  assert.equal((await m.putConfig(amp, lbId, cfg(lbId, runDir, 1))).version, 1);

  haproxyCmd = "/nonexistent/haproxy";
  // A weight change: checked by the model, stored without haproxy -c.
  const r = await m.putConfig(amp, lbId, cfg(lbId, runDir, 5));
  assert.equal(r.version, 2);
  // Any other change needs haproxy -c (which cannot run now).
  await assert.rejects(m.putConfig(amp, lbId, cfg(lbId, runDir, 5, "60s")), (e: Error & { reason?: string }) => e.reason === "HAPROXY_MISSING");

  // The policy changed: the stored config's stats socket is no longer
  // allowed, and a member-only change of it is refused by the policy.
  policy.extraPaths = [];
  await assert.rejects(m.putConfig(amp, lbId, cfg(lbId, runDir, 7)), (e: Error & { reason?: string }) => e.reason === "CONFIG_POLICY");
  assert.equal((await m.getConfig(lbId)).version, 2, "nothing stored");
});
