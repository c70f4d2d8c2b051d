// What the agent does at start for the network side: after a reboot the
// load-balancer namespace is bare, so recorded plugs are applied again and a
// keepalived that should run is started. After a mere agent restart both
// find everything in place and change nothing. Never fails the agent's start:
// problems are logged and the controller can plug again.
import type { Logger } from "../log.js";
import type { Conditions } from "../system/conditions.js";
import type { KeepalivedVrrp } from "../keepalived/vrrp.js";
import type { NetworkPlumbing } from "../network/plumbing.js";
import { reloadStoredRules } from "../network/interface-rules.js";
import { ensureNamespace } from "../network/namespace.js";

export { ensureNamespace };

export async function restoreAtStart(
  network: NetworkPlumbing, keepalived: KeepalivedVrrp, logger: Logger, stateDir: string,
  o: { bindHost?: string; conditions?: Conditions } = {},
): Promise<void> {
  try {
    // Only with plugs to restore (after a reboot the namespace is gone);
    // otherwise the first plug creates it, as Octavia's agent does.
    if (Object.keys((await network.state()).interfaces).length) await ensureNamespace(network.netns, logger);
  } catch (e) {
    logger.error({ err: e, netns: network.netns }, "could not create the load-balancer network namespace");
  }
  try {
    const r = await network.reapply({ bindHost: o.bindHost });
    if (r.applied.length || r.failures.length) logger.info({ applied: r.applied, failures: r.failures }, "recorded plugs re-applied");
    for (const x of r.refused) {
      if (o.conditions) o.conditions.report("plug_not_restored", `plug_not_restored:${x.mac}`, x.why);
      else logger.warn({ mac: x.mac }, x.why);
    }
  } catch (e) {
    logger.error({ err: e }, "could not re-apply recorded plugs");
  }
  try {
    // After the plugs, so that interfaces moved back in are there to match.
    const r = await reloadStoredRules(network.netns, stateDir, logger);
    if (r.failures.length) logger.warn({ loaded: r.loaded, failures: r.failures }, "some stored interface rules could not be loaded");
  } catch (e) {
    logger.error({ err: e }, "could not reload interface rules");
  }
  try {
    const k = await keepalived.resume();
    if (k !== "idle") logger.info({ keepalived: k }, "keepalived resumed");
  } catch (e) {
    logger.error({ err: e }, "could not restart keepalived");
  }
}
