// The config policy for keepalived uploads (VRRP and LVS): keepalived runs
// every script a configuration names as root, so by default the agent
// refuses, before `keepalived -t` reads the upload, what Octavia's templates
// never render:
// - `include` (always, policy or not: keepalived -t quoted every line of an
//   included file back to the caller, the agent's own private key included);
// - `notify*` scripts, `quorum_up`/`quorum_down` (LVS), notify FIFO scripts;
// - a vrrp_script `script` whose program is not directly in the agent's
//   check-script folder (<state dir>/vrrp/, or Octavia's /var/lib/octavia/vrrp/);
// - an LVS `misc_path` that is not Octavia's UDP check script
//   (<state dir>/lvs/check/) or its `amphora-health-checker`;
// - keepalived's parameter substitution ($NAME), conditional lines (@name)
//   and sequences (~SEQ), which could assemble any of the above out of
//   harmless-looking words.
// Octavia's keepalived and LVS templates pass (test/keepalived/config-policy.test.ts).
import { dirname, isAbsolute, normalize } from "node:path";
import { invalid } from "../errors.js";
import { scanConf, type ConfLine } from "./conf-scan.js";

export interface KeepalivedPolicy {
  enabled: boolean;
  stateDir: string;
  /** Extra folders an operator allows for scripts. */
  extraPaths: string[];
}

const OCTAVIA_BASE = "/var/lib/octavia";

const RELAX = " (refused by the agent's config policy; an operator can relax it with config_policy in the agent configuration)";

/** Why the policy refuses a line, or "" (INCLUDE: refused whatever the policy). */
function verdict(l: ConfLine, p: KeepalivedPolicy, scriptDirs: string[], checkDirs: string[]): string {
  const kw = l.words[0]!;
  if (kw === "include") return "INCLUDE";
  if (!p.enabled) return "";
  if (kw.startsWith("@") || kw.startsWith("~")) return "conditional and sequence lines are not used by Octavia's configurations";
  for (const w of l.words) if (w.includes("$")) return "parameter substitution ($) is not used by Octavia's configurations";
  if (kw.startsWith("notify") || kw.includes("notify_fifo") || kw === "quorum_up" || kw === "quorum_down") return `${kw} runs a program as root`;
  if (kw !== "script" && kw !== "misc_path") return "";
  // `script "/path arg"` is one quoted word: the program is its first word.
  const program = (l.words[1] ?? "").trim().split(/\s+/)[0] ?? "";
  const directlyIn = (dirs: string[]) => isAbsolute(program) && dirs.includes(dirname(normalize(program)));
  if (kw === "script" && (l.inner !== "vrrp_script" || !directlyIn(scriptDirs))) return `script ${program} must be a program directly in ${scriptDirs.join(" or ")}`;
  if (kw === "misc_path" && program !== "amphora-health-checker" && !directlyIn(checkDirs)) {
    return `misc_path ${program} must be amphora-health-checker or a program directly in ${checkDirs.join(" or ")}`;
  }
  return "";
}

/** Throws `invalid` (reason CONFIG_POLICY, or INCLUDE_REFUSED) naming the first refused line. One pass, linear. */
export function checkKeepalivedPolicy(text: string, p: KeepalivedPolicy, message = "Invalid request"): void {
  const scriptDirs = [`${p.stateDir}/vrrp`, `${OCTAVIA_BASE}/vrrp`, ...p.extraPaths];
  const checkDirs = [`${p.stateDir}/lvs/check`, `${OCTAVIA_BASE}/lvs/check`, ...p.extraPaths];
  let refused: { l: ConfLine; why: string } | undefined;
  scanConf(text, (l) => {
    const why = verdict(l, p, scriptDirs, checkDirs);
    if (!why) return true;
    refused = { l, why };
    return false;
  });
  if (!refused) return;
  const { l, why } = refused;
  const where = `line ${l.line}: ${JSON.stringify(l.words.join(" ").slice(0, 200))}`;
  if (why === "INCLUDE") {
    throw invalid(message, `${where}: include is not accepted: a configuration must be uploaded whole (validation output may only describe the upload itself)`, "INCLUDE_REFUSED");
  }
  throw invalid(message, `${where}: ${why}${RELAX}`, "CONFIG_POLICY");
}
