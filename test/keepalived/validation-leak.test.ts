// Validation output may only describe the caller's own upload (issue 15
// item 2). keepalived -t complained about every line of an `include`d file
// and the agent echoed that back: a root-only file's content and the
// agent's own server private key, line by line. haproxy -c does the same for
// a pattern file an ACL loads with -f. Through a real agent, with the config
// policy relaxed (an operator's choice) so that only the output filtering
// and the include refusal stand between the caller and the files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startTestAgent } from "../support/agent.js";
import { RestClient } from "../transport/rest/https-client.js";

/** Lines of a secret file that must never appear in an answer (long enough to be unmistakable). */
function secretLines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l.length >= 16 && !l.startsWith("-----"));
}

test("keepalived include of a root-only file and of the agent's own server key is refused, and no line of either reaches the answer; haproxy -c's lines about another file are withheld", async (t) => {
  for (const policy of [true, false]) {
    const agent = await startTestAgent({ overrides: { configPolicy: policy } });
    const work = mkdtempSync(join(tmpdir(), "amt-leak-"));
    const rest = new RestClient(agent.url, agent);
    t.after(async () => {
      rest.close();
      await agent.cleanup();
      rmSync(work, { recursive: true, force: true });
    });
    const rootOnly = join(work, "root-only.conf");
    writeFileSync(rootOnly, "very-secret-token-0123456789abcdef\nanother-secret-line-with-words\n");
    chmodSync(rootOnly, 0o600);
    const serverKey = agent.pki!.serverKey;
    const keyLines = secretLines(readFileSync(serverKey, "utf8"));
    assert.ok(keyLines.length > 2);
    const secrets = [...keyLines, "very-secret-token-0123456789abcdef", "another-secret-line-with-words"];
    const noLeak = (text: string, what: string) => {
      for (const s of secrets) assert.ok(!text.includes(s), `${what} leaks ${s.slice(0, 20)}...: ${text.slice(0, 400)}`);
    };

    for (const file of [rootOnly, serverKey]) {
      const r = await rest.request("PUT", "/1.0/vrrp/upload", { body: `include ${file}\n` });
      assert.equal(r.status, 500, r.text);
      noLeak(r.text, `keepalived include ${file}`);
      assert.match(r.json<{ details: string }>().details, /include is not accepted/);
    }

    // haproxy: an ACL pattern file outside the upload (the policy refuses it first when on).
    const lb = randomUUID();
    for (const file of [rootOnly, serverKey]) {
      const cfg = `# Configuration for loadbalancer ${lb}\nglobal\ndefaults\n    mode http\nfrontend f\n    bind 127.0.0.1:1\n    acl a src -f ${file}\n    http-request deny if a\n`;
      const r = await rest.request("PUT", `/1.0/loadbalancer/${agent.config.amphoraId}/${lb}/haproxy`, { body: cfg });
      assert.equal(r.status, 400, r.text);
      noLeak(r.text, `haproxy acl -f ${file}`);
      const details = r.json<{ details: string }>().details;
      if (policy) assert.match(details, /-f .* (is outside the folders the agent allows|is one of the agent.s own files)/);
      else {
        // The line keeps its place and the path, never the content.
        assert.match(details, /parsing \[haproxy\.cfg of load balancer [0-9a-f-]+:7\] \(message withheld: it concerns \//);
      }
    }
  }
});
