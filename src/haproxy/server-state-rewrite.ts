// The `show servers state` text the agent saves before a reload
// (`load-server-state-from-file`), adjusted so the reloaded worker runs what
// the new config says while keeping each server's health-check state.
//
// haproxy 2.6 applies a saved line by its own rules, measured here:
// - the saved port always wins over the config's (a port changed in the
//   config would be lost);
// - the saved weight wins whenever the saved *initial* weight equals the
//   new config's, so a weight set at runtime (initial weight still the old
//   config's) survives a later config that goes back to that old weight;
// - maintenance set at runtime (not `disabled` in the config) survives a
//   config that enables the server.
// Runtime apply (issue 13) sets weights, states and addresses that the
// config owns, so each saved server that still matches the config it was
// running (the served one) is rewritten as if that state had come from the
// config: initial weight = current weight, admin state from the new
// config's `disabled`, address and port from the new config. So is a server
// the served config lacks (added at runtime), one that already matches the
// new config, and every server after a runtime apply that failed half-way
// (`all`). Any other server differs from the served config because someone
// else changed it (an operator on the master CLI): its line is kept as
// haproxy saved it, as is every line when the served config is unknown.
import type { ConfigModel, ServerLine } from "./config-model.js";

const FMAINT = 0x01;
const CMAINT = 0x04;
const FDRAIN = 0x08;

function serversOf(m: ConfigModel): Map<string, ServerLine> {
  const out = new Map<string, ServerLine>();
  for (const s of m.sections) if (s.type === "backend") for (const [name, line] of s.servers) out.set(`${s.name}/${name}`, line);
  return out;
}

/** `state`: a `show servers state` answer; `served`: the config the worker runs; `next`: the one it reloads with. */
export function rewriteServerState(state: string, served: ConfigModel | undefined, next: ConfigModel, o: { all?: boolean } = {}): string {
  const was = served ? serversOf(served) : undefined;
  const will = serversOf(next);
  let cols: string[] | undefined;
  const out: string[] = [];
  for (const line of state.split("\n")) {
    if (line.startsWith("# be_id")) cols = line.slice(2).trim().split(/\s+/);
    if (!cols || line.startsWith("#") || !line.trim()) {
      out.push(line);
      continue;
    }
    const f = line.trim().split(/\s+/);
    const at = (name: string) => cols!.indexOf(name);
    const key = `${f[at("be_name")]}/${f[at("srv_name")]}`;
    const to = will.get(key);
    // Gone from the new config: haproxy would only warn about it.
    if (!to) continue;
    const from = was?.get(key);
    const admin = Number(f[at("srv_admin_state")]);
    const weight = Number(f[at("srv_uweight")]);
    const addr = f[at("srv_addr")];
    const port = Number(f[at("srv_port")]);
    const matches = (s: ServerLine) =>
      weight === s.weight && Boolean(admin & FMAINT) === s.disabled && !(admin & FDRAIN) &&
      (s.ip === undefined || (addr === s.ip && port === s.port));
    const configOwned = o.all || (was !== undefined && (!from || matches(from) || matches(to)));
    if (!configOwned) {
      out.push(line);
      continue;
    }
    f[at("srv_iweight")] = String(weight);
    f[at("srv_admin_state")] = String(to.disabled ? FMAINT | CMAINT : 0);
    if (to.ip !== undefined) {
      f[at("srv_addr")] = to.ip;
      f[at("srv_port")] = String(to.port);
    }
    out.push(f.join(" "));
  }
  return out.join("\n");
}
