// The config policy (src/haproxy/config-policy.ts, src/keepalived/config-policy.ts):
// everything Octavia 11's own templates render passes (rendered here with
// python3-octavia's Jinja templaters), each construct they never render is
// refused with the offending line, and the two exact cases of issue 15 are
// refused through a real agent before haproxy ever reads them: a PEM/Lua
// polyglot uploaded as a certificate and lua-loaded (haproxy -c would run it
// as root), and a `stats socket` that would replace an existing file
// outside the state directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { checkHaproxyPolicy, type ConfigPolicy } from "../../src/haproxy/config-policy.js";
import { checkKeepalivedPolicy } from "../../src/keepalived/config-policy.js";
import { DomainError } from "../../src/errors.js";
import { startTestAgent } from "../support/agent.js";
import { RestClient } from "../transport/rest/https-client.js";
import { selfSignedPem } from "../support/haproxy.js";

const here = new URL(".", import.meta.url).pathname;

function render(stateDir: string, certDir: string): Record<string, { text: string; lbId?: string; listenerId?: string }> {
  const out = execFileSync("/usr/bin/python3", [join(here, "../support/octavia-render.py"), stateDir, certDir], { encoding: "utf8", maxBuffer: 16 << 20 });
  return JSON.parse(out) as Record<string, { text: string; lbId?: string }>;
}

const policyFor = (stateDir: string): ConfigPolicy => ({ enabled: true, stateDir, certDir: join(stateDir, "certs"), extraPaths: [] });

async function refusedLine(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    assert.ok(e instanceof DomainError, String(e));
    assert.equal(e.kind, "invalid");
    return e.details;
  }
  assert.fail("accepted");
}

test("every configuration Octavia's templates render passes the policy (haproxy SINGLE and ACTIVE_STANDBY with HTTP, TCP, TERMINATED_HTTPS + client CA + CRL, pool TLS, HTTP/TCP/PING monitors, L7 policy; keepalived VRRP; LVS UDP/SCTP)", async () => {
  for (const [stateDir, certDir] of [["/var/lib/octavia", "/var/lib/octavia/certs"], ["/srv/amt-state", "/srv/amt-certs"]] as const) {
    const r = render(stateDir, certDir);
    const names = Object.keys(r);
    assert.ok(names.includes("haproxy SINGLE") && names.includes("haproxy ACTIVE_STANDBY") && names.includes("keepalived"), names.join(","));
    const p: ConfigPolicy = { enabled: true, stateDir, certDir, extraPaths: [] };
    for (const [name, c] of Object.entries(r)) {
      if (name.startsWith("haproxy")) {
        // What the rendering exercised, so the acceptance means something.
        for (const needle of ["stats socket", "server-state-file", "log /run/rsyslog/octavia/log", "external-check command /var/lib/octavia/ping-wrapper.sh", "crt-list", "ca-file", "crl-file", "ssl crt "]) {
          assert.ok(c.text.includes(needle), `${name} renders ${needle}`);
        }
        if (name.includes("ACTIVE_STANDBY")) assert.match(c.text, /\npeers /);
        await checkHaproxyPolicy(c.text, c.lbId!, p);
      } else {
        checkKeepalivedPolicy(c.text, { enabled: true, stateDir, extraPaths: [] });
      }
    }
  }
});

test("the haproxy policy refuses what Octavia never renders, naming the line", async () => {
  const s = "/var/lib/octavia";
  const lb = randomUUID();
  const p = policyFor(s);
  const cfg = (global: string[], backend: string[] = []) =>
    ["global", ...global.map((l) => `    ${l}`), "defaults", "    mode http", "backend b", ...backend.map((l) => `    ${l}`), ""].join("\n");
  const cases: [string, string][] = [
    [["global", "program evil", "    command /bin/sh -c id"].join("\n"), "program sections"],
    [cfg(["lua-load /var/lib/octavia/certs/x/poly.pem"]), "lua-load runs Lua"],
    [cfg(["lua-prepend-path /tmp/?.lua"]), "lua-prepend-path"],
    [cfg([], ["option external-check", "external-check command /bin/sh"]), "external-check command /bin/sh"],
    [cfg(["stats socket /etc/amt-x.sock mode 0666"]), "stats socket /etc/amt-x.sock"],
    [cfg([`stats socket ${s}/lb/${lb}/master.sock`]), "must be a <name>.sock"],
    [cfg(["stats socket ipv4@127.0.0.1:9999 level admin"]), "only a socket path"],
    [cfg(["log /tmp/amt-log local0"]), "log target /tmp/amt-log"],
    [cfg(["ssl-engine rdrand"]), "ssl-engine"],
    [cfg(["pidfile /etc/passwd"]), "pidfile"],
    [cfg(["user root"]), "user root"],
    // haproxy opens a section on its keyword however the line is indented.
    [["defaults", "    mode http", "    global", "    user root", ""].join("\n"), "user root"],
    [cfg([], ["server a /run/docker.sock"]), "local sockets"],
    [cfg([], ["acl a src -f /etc/shadow", "http-request deny if a"]), "-f /etc/shadow is outside"],
    [cfg([], ["http-request set-header x %[src,map_ip(/etc/shadow)]"]), "file /etc/shadow is outside"],
    [cfg([], ["server a 192.0.2.1:443 ssl crt /root/key.pem"]), "crt /root/key.pem is outside"],
    [cfg([], ["errorfile 503 /etc/shadow"]), "errorfile /etc/shadow"],
    [cfg(["server-state-file relative/servers-state"]), "not an absolute path"],
  ];
  for (const [text, why] of cases) {
    const d = await refusedLine(() => checkHaproxyPolicy(text, lb, p));
    assert.ok(d.includes(why), `${JSON.stringify(why)} in ${d}`);
    assert.match(d, /^line \d+: "/);
  }
  // Relaxed by the operator: none of it is refused.
  for (const [text] of cases) await checkHaproxyPolicy(text, lb, { ...p, enabled: false });
  // An operator's extra folder is allowed.
  await checkHaproxyPolicy(cfg([], ["option external-check", "external-check command /opt/checks/ping.sh"]), lb, { ...p, extraPaths: ["/opt/checks"] });
});

test("the keepalived policy refuses notify scripts, scripts outside the check-script folder, includes and substitutions", async () => {
  const p = { enabled: true, stateDir: "/var/lib/octavia", extraPaths: [] };
  const cases: [string, string][] = [
    ["vrrp_instance a {\n  notify_master /tmp/x.sh\n}\n", "notify_master runs a program as root"],
    ["vrrp_instance a {\n  notify \"/bin/sh -c id\"\n}\n", "notify runs"],
    ["global_defs {\n  vrrp_notify_fifo_script /tmp/x\n}\n", "notify"],
    ["vrrp_script c {\n  script \"/bin/sh -c id\"\n}\n", "script /bin/sh must be"],
    ["vrrp_script c {\n  script /var/lib/octavia/vrrp/../../../bin/sh\n}\n", "must be a program directly in"],
    ["include /etc/shadow\n", "include is not accepted"],
    ["$X=notify_master\n", "parameter substitution"],
    ["@amp1 notify_master /tmp/x\n", "conditional"],
    ["virtual_server 192.0.2.1 53 {\n  real_server 192.0.2.2 53 {\n    MISC_CHECK {\n      misc_path \"/bin/sh -c id\"\n    }\n  }\n}\n", "misc_path /bin/sh"],
    ["virtual_server 192.0.2.1 53 {\n  quorum_up /tmp/x\n}\n", "quorum_up"],
  ];
  for (const [text, why] of cases) {
    const d = await refusedLine(() => checkKeepalivedPolicy(text, p));
    assert.ok(d.includes(why), `${JSON.stringify(why)} in ${d}`);
  }
  // Relaxed: everything but include passes (include never: validation output would quote the file).
  for (const [text, why] of cases) {
    if (why.startsWith("include")) assert.match(await refusedLine(() => checkKeepalivedPolicy(text, { ...p, enabled: false })), /include is not accepted/);
    else checkKeepalivedPolicy(text, { ...p, enabled: false });
  }
});

test("through the agent: a PEM/Lua polyglot uploaded as a certificate and lua-loaded is refused before haproxy -c runs it; a stats socket over an existing file outside the state dir is refused and the file stays", async (t) => {
  const agent = await startTestAgent({ overrides: { configPolicy: true } });
  const work = mkdtempSync(join(tmpdir(), "amt-policy-"));
  const rest = new RestClient(agent.url, agent);
  t.after(async () => {
    rest.close();
    await agent.cleanup();
    rmSync(work, { recursive: true, force: true });
  });
  const lb = randomUUID();
  const amp = agent.config.amphoraId;
  const pem = await selfSignedPem(work, "poly.example");
  const marker = join(work, "lua-ran");
  // Valid PEM for the certificate check (text outside blocks is ignored), valid Lua for haproxy.
  const poly = `--[[\n${pem.bundle}]]\nlocal f = io.open(${JSON.stringify(marker)}, "w") f:write("ran as root") f:close()\n`;
  const put = await rest.request("PUT", `/1.0/loadbalancer/${lb}/certificates/poly.pem`, { body: poly });
  assert.equal(put.status, 200, put.text);
  const certPath = join(agent.config.certDir, lb, "poly.pem");
  const cfg = `# Configuration for loadbalancer ${lb}\nglobal\n    lua-load ${certPath}\ndefaults\n    mode http\n`;
  const r = await rest.request("PUT", `/1.0/loadbalancer/${amp}/${lb}/haproxy`, { body: cfg });
  assert.equal(r.status, 400, r.text);
  const body = r.json<{ message: string; details: string }>();
  assert.match(body.details, /line 3: "lua-load .*poly\.pem": lua-load runs Lua code as root/);
  assert.equal(existsSync(marker), false, "haproxy -c never ran the Lua code");

  // stats socket over an existing file outside the state directory.
  const victim = join(work, "victim.sock");
  writeFileSync(victim, "precious\n");
  const sock = `# Configuration for loadbalancer ${lb}\nglobal\n    stats socket ${victim} mode 0666 level user\ndefaults\n    mode http\n`;
  const s = await rest.request("PUT", `/1.0/loadbalancer/${amp}/${lb}/haproxy`, { body: sock });
  assert.equal(s.status, 400, s.text);
  assert.match(s.json<{ details: string }>().details, /stats socket .*victim\.sock must be a <name>\.sock directly in/);
  // Even named like a socket inside the state dir, an existing regular file is never replaced.
  const inState = join(agent.stateDir, `${lb}.sock`);
  writeFileSync(inState, "not a socket\n");
  const s2 = await rest.request("PUT", `/1.0/loadbalancer/${amp}/${lb}/haproxy`, { body: sock.replace(victim, inState) });
  assert.equal(s2.status, 400, s2.text);
  assert.match(s2.json<{ details: string }>().details, /would replace an existing file that is not a socket/);
  assert.equal(readFileSync(victim, "utf8"), "precious\n");
  // Nothing was stored for the load balancer.
  assert.equal((await rest.request("GET", `/1.0/loadbalancer/${lb}/haproxy`)).status, 404);
});

test("through the agent, config_policy = off relaxes it (an operator's choice): the same stats socket outside the state dir is accepted", async (t) => {
  const agent = await startTestAgent({ overrides: { configPolicy: false } });
  const work = mkdtempSync(join(tmpdir(), "amt-policy-off-"));
  const rest = new RestClient(agent.url, agent);
  t.after(async () => {
    rest.close();
    await agent.cleanup();
    rmSync(work, { recursive: true, force: true });
  });
  mkdirSync(join(work, "run"));
  const lb = randomUUID();
  const cfg = `# Configuration for loadbalancer ${lb}\nglobal\n    stats socket ${join(work, "run", "x.sock")} mode 0666 level user\ndefaults\n    mode http\n`;
  const r = await rest.request("PUT", `/1.0/loadbalancer/${agent.config.amphoraId}/${lb}/haproxy`, { body: cfg });
  assert.equal(r.status, 202, r.text);
});
