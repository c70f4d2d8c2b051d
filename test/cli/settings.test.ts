// Where the CLI takes its connection settings from: precedence of flags,
// environment, config file profiles and --dev-state; agent URL shorthand.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { normalizeAgentUrl, resolveSettings, DEFAULT_AGENT } from "../../src/cli/settings.js";
import { UsageError } from "../../src/cli/exit-codes.js";

const dir = mkdtempSync(join(tmpdir(), "amt-cliset-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const noFile = { XDG_CONFIG_HOME: join(dir, "none") };

test("agent URL shorthand", () => {
  assert.equal(normalizeAgentUrl("192.0.2.10"), "https://192.0.2.10:9443");
  assert.equal(normalizeAgentUrl("192.0.2.10:8443"), "https://192.0.2.10:8443");
  assert.equal(normalizeAgentUrl("amphora-1.example"), "https://amphora-1.example:9443");
  assert.equal(normalizeAgentUrl("2001:db8::1"), "https://[2001:db8::1]:9443");
  assert.equal(normalizeAgentUrl("[2001:db8::1]:9000"), "https://[2001:db8::1]:9000");
  assert.equal(normalizeAgentUrl("https://192.0.2.10:9443/"), "https://192.0.2.10:9443");
});

test("defaults, then --dev-state, then env, then flags", () => {
  let s = resolveSettings({}, noFile);
  assert.deepEqual(s.agents, [DEFAULT_AGENT]);
  assert.equal(s.ca, undefined);
  assert.equal(s.protocol, "connect");

  s = resolveSettings({ "dev-state": "/srv/st" }, noFile);
  assert.equal(s.ca, "/srv/st/pki/ca.pem");
  assert.equal(s.cert, "/srv/st/pki/client.pem");
  assert.equal(s.key, "/srv/st/pki/client-key.pem");

  s = resolveSettings({ "dev-state": "/srv/st" }, { ...noFile, AMPHORA_CA: "/env/ca.pem", AMPHORA_AGENT: "192.0.2.1, 192.0.2.2:9000", AMPHORA_TIMEOUT: "1500" });
  assert.equal(s.ca, "/env/ca.pem", "an explicit CA beats the dev PKI");
  assert.equal(s.cert, "/srv/st/pki/client.pem");
  assert.deepEqual(s.agents, ["https://192.0.2.1:9443", "https://192.0.2.2:9000"]);
  assert.equal(s.timeoutMs, 1500);
  assert.equal(s.sources.ca, "AMPHORA_CA");

  s = resolveSettings({ ca: "/flag/ca.pem", agent: ["https://203.0.113.5:9443"] }, { ...noFile, AMPHORA_CA: "/env/ca.pem", AMPHORA_AGENT: "192.0.2.1" });
  assert.equal(s.ca, "/flag/ca.pem");
  assert.deepEqual(s.agents, ["https://203.0.113.5:9443"]);
  assert.equal(s.sources.agents, "--agent");
});

test("config file: relative paths, default profile, chosen profile, env over file", () => {
  const file = join(dir, "cli.json");
  writeFileSync(file, JSON.stringify({
    agent: "192.0.2.10", ca: "ca.pem", cert: "client.pem", key: "client-key.pem", protocol: "grpc", timeoutMs: 900,
    profile: "pair",
    profiles: { pair: { agent: ["192.0.2.10", "192.0.2.11"] }, dev: { agent: "127.0.0.1", devState: "state", ca: "" } },
  }));
  let s = resolveSettings({ "cli-config": file }, noFile);
  assert.deepEqual(s.agents, ["https://192.0.2.10:9443", "https://192.0.2.11:9443"], "the file's default profile");
  assert.equal(s.ca, join(dir, "ca.pem"));
  assert.equal(s.protocol, "grpc");
  assert.equal(s.timeoutMs, 900);

  s = resolveSettings({ profile: "dev" }, { ...noFile, AMPHORA_CONFIG: file });
  assert.deepEqual(s.agents, ["https://127.0.0.1:9443"]);
  assert.equal(s.cert, join(dir, "client.pem"), "top-level values stay unless the profile overrides them");
  assert.equal(s.ca, join(dir, "state", "pki", "ca.pem"), "a blanked value falls through to the profile's dev state");

  s = resolveSettings({ "cli-config": file }, { ...noFile, AMPHORA_PROFILE: "dev", AMPHORA_PROTOCOL: "grpc-web" });
  assert.equal(s.protocol, "grpc-web");

  // The default location.
  const xdg = join(dir, "xdg");
  mkdirSync(join(xdg, "amphora"), { recursive: true });
  writeFileSync(join(xdg, "amphora", "cli.json"), JSON.stringify({ agent: "198.51.100.7" }));
  s = resolveSettings({}, { XDG_CONFIG_HOME: xdg });
  assert.deepEqual(s.agents, ["https://198.51.100.7:9443"]);
});

test("bad settings are usage errors that say where they came from", () => {
  const bad = join(dir, "bad.json");
  writeFileSync(bad, "{ not json");
  assert.throws(() => resolveSettings({ "cli-config": bad }, noFile), (e: unknown) => e instanceof UsageError && /bad\.json is not valid JSON/.test(e.message));
  assert.throws(() => resolveSettings({ "cli-config": join(dir, "absent.json") }, noFile), /does not exist \(from --cli-config\)/);
  assert.throws(() => resolveSettings({}, { ...noFile, AMPHORA_CONFIG: join(dir, "absent.json") }), /from AMPHORA_CONFIG/);
  assert.throws(() => resolveSettings({ protocol: "soap" }, noFile), /--protocol must be connect, grpc or grpcweb/);
  assert.throws(() => resolveSettings({ timeout: "soon" }, noFile), /--timeout must be milliseconds/);
});

test("--protocol grpcweb, buf's spelling, is accepted; grpc-web too", () => {
  assert.equal(resolveSettings({ protocol: "grpcweb" }, noFile).protocol, "grpcweb");
  assert.equal(resolveSettings({}, { ...noFile, AMPHORA_PROTOCOL: "grpcweb" }).protocol, "grpcweb");
  assert.equal(resolveSettings({ protocol: "grpc-web" }, noFile).protocol, "grpc-web");
});
