// Octavia's amphora-agent.conf as the agent reads it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { pino } from "pino";
import { applyIni, defaultConfig, ConfigError } from "../../src/config/config.js";
import { redactPaths } from "../../src/log.js";

const OCTAVIA_STYLE = `
[DEFAULT]
debug = False
use_syslog = True

[haproxy_amphora]
base_cert_dir = /var/lib/octavia/certs
base_path = /var/lib/octavia
bind_host = ::
bind_port = 9443
haproxy_cmd = /usr/sbin/haproxy
user_log_facility = 0

[health_manager]
controller_ip_port_list = 192.0.2.10:5555, 192.0.2.11:5555, [2001:db8::1]:5555
heartbeat_interval = 10
heartbeat_key = insecure

[amphora_agent]
agent_server_ca = /etc/octavia/certs/client_ca.pem
agent_server_cert = /etc/octavia/certs/server.pem
agent_request_read_timeout = 180
amphora_id = 6f1e0b1a-9d9b-4a7b-8a42-2c5d4c3e2f10
amphora_udp_driver = keepalived_lvs
agent_tls_protocol = TLSv1.2

[controller_worker]
loadbalancer_topology = ACTIVE_STANDBY
`;

test("an Octavia-rendered config is read, unknown options reported as ignored", () => {
  const { config, ignored } = applyIni(defaultConfig(), OCTAVIA_STYLE, "amphora-agent.conf");
  assert.equal(config.stateDir, "/var/lib/octavia");
  assert.equal(config.certDir, "/var/lib/octavia/certs");
  assert.equal(config.bindHost, "::");
  assert.equal(config.bindPort, 9443);
  assert.equal(config.amphoraId, "6f1e0b1a-9d9b-4a7b-8a42-2c5d4c3e2f10");
  assert.deepEqual(config.heartbeatTargets, [
    { host: "192.0.2.10", port: 5555 }, { host: "192.0.2.11", port: 5555 }, { host: "2001:db8::1", port: 5555 },
  ]);
  assert.equal(config.heartbeatKey, "insecure");
  assert.equal(config.topology, "ACTIVE_STANDBY");
  assert.ok(ignored.includes("amphora_agent.agent_tls_protocol"));
  assert.ok(ignored.includes("DEFAULT.use_syslog"));
  assert.ok(!ignored.includes("amphora_agent.amphora_id"));
});

test("an invalid value of a used option names file, line and option", () => {
  assert.throws(
    () => applyIni(defaultConfig(), "[haproxy_amphora]\nbind_port = 99999\n", "/etc/a.conf"),
    (e: ConfigError) => /\/etc\/a\.conf:2/.test(e.message) && /bind_port/.test(e.message) && /65535/.test(e.message),
  );
  assert.throws(
    () => applyIni(defaultConfig(), "[health_manager]\n\ncontroller_ip_port_list = 192.0.2.1\n", "x.conf"),
    (e: ConfigError) => /x\.conf:3/.test(e.message) && /controller_ip_port_list/.test(e.message),
  );
});

test("a malformed line is an error with its line number", () => {
  assert.throws(() => applyIni(defaultConfig(), "[a]\nok = 1\nthis is not ini\n", "f.conf"), /f\.conf:3.*cannot parse/);
});

test("a malformed line's error does not repeat the rest of the line, which may be a secret", () => {
  assert.throws(
    () => applyIni(defaultConfig(), "[health_manager]\nheartbeat_key s3cr3t-value\n", "f.conf"),
    (e: ConfigError) => /f\.conf:2/.test(e.message) && /heartbeat_key/.test(e.message) && !e.message.includes("s3cr3t"),
  );
});

test("log lines redact secrets by key name, snake_case and camelCase, nested too", () => {
  let out = "";
  const sink = new Writable({ write(c, _e, cb) { out += c; cb(); } });
  const log = pino({ redact: { paths: redactPaths, censor: "[redacted]" } }, sink);
  log.info({ heartbeatKey: "k1", config: { heartbeat_key: "k2", keyPem: "k3" }, a: { b: { pem: "k4" } }, lb: "visible" }, "x");
  for (const s of ["k1", "k2", "k3", "k4"]) assert.ok(!out.includes(`"${s}"`), `${s} leaked: ${out}`);
  assert.match(out, /visible/);
});
