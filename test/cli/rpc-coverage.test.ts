// Every RPC of the contract has a CLI subcommand: a method added to a proto
// without one fails here, naming it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  SystemService, LoadBalancerService, CertificateService, NetworkService, KeepalivedService, StatsService, EventService,
} from "../../src/driver/index.js";

test("every RPC is reachable from a subcommand", () => {
  const dir = join(import.meta.dirname, "..", "..", "src", "cli");
  const groups = readdirSync(join(dir, "commands")).filter((f) => f.endsWith(".ts")).map((f) => join(dir, "commands", f));
  const src = [...groups, join(dir, "watch.ts")].map((f) => readFileSync(f, "utf8")).join("\n");
  const calls = new Set([...src.matchAll(/client\.(\w+)\.(\w+)\(/g)].map((m) => `${m[1]}.${m[2]}`));
  // The flows call these through the driver.
  const flows: Record<string, string[]> = {
    applyLoadBalancer: ["certificate.getCertificateMd5", "certificate.putCertificate", "loadBalancer.putConfig", "loadBalancer.controlLoadBalancer"],
    followStats: ["stats.watchStats"],
    followEvents: ["events.watchEvents"],
    waitForListenersActive: ["loadBalancer.listListeners"],
  };
  for (const [fn, rpcs] of Object.entries(flows)) if (src.includes(`${fn}(`)) rpcs.forEach((r) => calls.add(r));
  const services = { system: SystemService, loadBalancer: LoadBalancerService, certificate: CertificateService, network: NetworkService, keepalived: KeepalivedService, stats: StatsService, events: EventService };
  const missing = Object.entries(services).flatMap(([prop, svc]) => svc.methods.map((m) => `${prop}.${m.localName}`)).filter((c) => !calls.has(c));
  assert.deepEqual(missing, [], "RPCs without a CLI subcommand");
});
