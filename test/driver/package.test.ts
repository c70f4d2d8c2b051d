// The published entry point: `amphora-agent/driver` resolves to the
// compiled library in dist/ and works from plain Node.js (no TypeScript
// loader), as a controller service would import it; the `amphora` bin runs
// the compiled CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startTestAgent } from "../support/agent.js";

const REPO = join(import.meta.dirname, "..", "..");

test("amphora-agent/driver and the amphora bin from plain node: compiled, typed, talk to a real agent", async (t) => {
  // dist/ is built from this tree by `npm test` (scripts/run-tests.mjs) before any test runs.
  assert.ok(existsSync(join(REPO, "dist", "driver", "index.d.ts")), "type declarations are emitted (run `npm run build`)");

  const agent = await startTestAgent();
  t.after(() => agent.cleanup());
  const script = `
    const { createAmphoraClient, AmphoraError, toJsonString, toJson, GetDetailsResponseSchema } = await import("amphora-agent/driver");
    const { ErrorInfoSchema } = await import("amphora-agent/gen/amphora/v1/errors_pb.js");
    const c = createAmphoraClient({ baseUrl: process.env.URL, ca: process.env.CA, cert: process.env.CERT, key: process.env.KEY });
    const info = await c.system.getInfo({});
    // 64-bit fields are bigints: JSON.stringify refuses them, the re-exported toJson writes strings.
    const details = await c.system.getDetails({});
    let stringify = "";
    try { JSON.stringify(details); } catch (e) { stringify = e.name; }
    const memoryTotal = JSON.parse(toJsonString(GetDetailsResponseSchema, details)).memory.total;
    const viaToJson = toJson(GetDetailsResponseSchema, details).memory.total;
    let code = "";
    try { await c.loadBalancer.getConfig({ amphoraId: info.amphoraId, lbId: "00000000-0000-4000-8000-000000000000" }); }
    catch (e) { code = e instanceof AmphoraError ? e.codeName : String(e); }
    c.close();
    console.log(JSON.stringify({ amphoraId: info.amphoraId, code, schema: ErrorInfoSchema.typeName, stringify, memoryTotal, viaToJson }));
  `;
  // No --import tsx: only what is compiled can load. (Asynchronous: the
  // agent answering it runs in this process.)
  const { stdout: out } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", URL: agent.url, CA: agent.ca, CERT: agent.cert, KEY: agent.key },
    encoding: "utf8",
    timeout: 30_000,
  });
  const r = JSON.parse(out.trim()) as { amphoraId: string; code: string; schema: string; stringify: string; memoryTotal: unknown; viaToJson: unknown };
  assert.equal(r.stringify, "TypeError", "a response with 64-bit fields is not JSON.stringify-able");
  assert.match(String(r.memoryTotal), /^\d+$/);
  assert.equal(typeof r.memoryTotal, "string", "toJsonString: 64-bit as strings");
  assert.equal(r.viaToJson, r.memoryTotal);
  assert.equal(r.amphoraId, agent.config.amphoraId);
  assert.equal(r.code, "not_found");
  assert.equal(r.schema, "amphora.v1.ErrorInfo");

  assert.ok(existsSync(join(REPO, "dist", "cli", "main.js")), "the CLI is compiled too");
  const cli = await promisify(execFile)(process.execPath, [join(REPO, "bin", "amphora.js"), "--agent", agent.url, "--dev-state", agent.stateDir, "info", "--json"], {
    cwd: REPO,
    // AMPHORA_REQUIRE_DIST: the bin fails instead of falling back to the sources.
    env: { PATH: process.env.PATH ?? "", XDG_CONFIG_HOME: join(agent.stateDir, "no-config"), AMPHORA_REQUIRE_DIST: "1" },
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal((JSON.parse(cli.stdout) as { amphora_id: string }).amphora_id, agent.config.amphoraId);
});
