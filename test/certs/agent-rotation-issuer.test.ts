// Agent certificate rotation to an unrelated issuer (issue 15 item 4): the
// controller trusts the agent through the current certificate's issuer, so
// a rotation to a certificate of another issuer locked it out until someone
// logged in to the VM. Refused unless forced; a forced rotation is undone
// through the API (RestorePreviousAgentCertificate, an RPC: the REST routes are exactly Octavia's). Checked with real TLS
// clients: what certificate a new connection is served, and whether a
// client trusting the original CA can still call the agent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { RestClient } from "../transport/rest/https-client.js";
import { createCa, issueCertificate } from "../../src/agent/dev-pki.js";
import { runChecked } from "../../src/system/exec.js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";

/** Fingerprint of the certificate a new TLS connection to the agent is served (no verification). */
function served(agent: TestAgent): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: agent.port, rejectUnauthorized: false, cert: agent.cert, key: agent.key }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? "";
      s.destroy();
      resolve(fp);
    });
    s.on("error", reject);
  });
}

async function leafFrom(ca: { ca: string; caKey: string }, dir: string, name: string, cn: string): Promise<{ pem: string; fp: string }> {
  const key = join(dir, `${name}-key.pem`);
  const crt = join(dir, `${name}.pem`);
  await runChecked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
  await issueCertificate({ ...ca, dir } as never, { keyPath: key, certPath: crt, cn, sans: [cn, "127.0.0.1"] });
  return { pem: readFileSync(key, "utf8") + readFileSync(crt, "utf8"), fp: new X509Certificate(readFileSync(crt)).fingerprint256 };
}

test("rotation to another issuer (other name, or same name with another key) is refused unless forced; a forced rotation is undone through the API; a mismatched key is refused", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "amt-rot-iss-"));
  const agent = await startTestAgent();
  t.after(async () => {
    await agent.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });
  const id = agent.config.amphoraId;
  const original = await served(agent);
  const controller = new RestClient(agent.url, agent, id); // trusts the dev CA, checks the amphora id
  t.after(() => controller.close());
  const ok = async () => (await controller.request("GET", "/1.0/info")).status;
  assert.equal(await ok(), 200);

  // Another CA with another name, and one that copies the dev CA's name (its key differs: another authority key identifier).
  const other = await createCa(join(tmp, "other"), "some other CA");
  const twin = await createCa(join(tmp, "twin"), "amphora-agent dev CA");
  assert.equal(new X509Certificate(readFileSync(twin.ca)).subject, new X509Certificate(readFileSync(agent.pki!.ca)).subject);
  const foreign = await leafFrom(other, tmp, "foreign", id);
  const lookalike = await leafFrom(twin, tmp, "lookalike", id);

  for (const [what, leaf, why] of [["other issuer", foreign, /its issuer .* is not the current certificate's issuer/], ["same issuer name, other key", lookalike, /authority key identifier/]] as const) {
    const r = await controller.request("PUT", "/1.0/certificate", { body: leaf.pem });
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.match(r.json<{ details: string }>().details, why);
    assert.match(r.json<{ details: string }>().details, /force/);
    assert.equal(await served(agent), original, `${what}: still serving the original certificate`);
    assert.equal(await ok(), 200, `${what}: the controller still reaches the agent`);
  }

  // A key that does not belong to the certificate.
  const same = await leafFrom(agent.pki!, tmp, "same", id);
  const otherKey = readFileSync(join(tmp, "foreign-key.pem"), "utf8");
  const mismatch = await controller.request("PUT", "/1.0/certificate", { body: otherKey + same.pem.slice(same.pem.indexOf("-----BEGIN CERTIFICATE")) });
  assert.equal(mismatch.status, 400, mismatch.text);
  assert.match(mismatch.text, /do not match/);

  // Forced: served from now on; a controller trusting only the original CA is locked out...
  const forced = await controller.request("PUT", "/1.0/certificate?force=true", { body: foreign.pem });
  assert.equal(forced.status, 202, forced.text);
  assert.match(forced.json<{ details: string }>().details, /forced/);
  assert.equal(await served(agent), foreign.fp);
  const lockedOut = new RestClient(agent.url, agent, id);
  await assert.rejects(lockedOut.request("GET", "/1.0/info"), /certificate|verify|self/i);
  lockedOut.close();
  // ...until a client that trusts the new issuer undoes it through the API.
  const newSide = createClient(SystemService, createConnectTransport({
    baseUrl: agent.url, httpVersion: "2", nodeOptions: { ca: readFileSync(other.ca, "utf8"), cert: agent.cert, key: agent.key, servername: id },
  }));
  const undo = await newSide.restorePreviousAgentCertificate({});
  assert.match(undo.details, /again/);
  assert.equal(await served(agent), original, "the original certificate is served again");
  const back = new RestClient(agent.url, agent, id);
  assert.equal((await back.request("GET", "/1.0/info")).status, 200, "the original controller reaches the agent again");
  back.close();
  // Persisted for the next start.
  assert.equal(new X509Certificate(readFileSync(agent.config.serverCertFile)).fingerprint256, original);
});
