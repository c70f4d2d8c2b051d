// The help texts: `amphora --help`, `amphora GROUP --help`,
// `amphora GROUP COMMAND --help`.
import type { Command, OptSpec } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { EXIT_CODES_HELP } from "./exit-codes.js";
import { GLOBAL_OPTIONS } from "./global-options.js";
import { defaultConfigPath } from "./settings.js";

function optionLines(opts: Record<string, OptSpec>): string {
  const rows = Object.entries(opts).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`,
    o.help,
  ]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`).join("\n") + "\n";
}

export const usageOf = (c: Command) => `amphora ${c.path.join(" ")}${c.args.length ? " " + c.args.join(" ") : ""}${c.options ? " [options]" : ""}`;

export function mainHelp(env: NodeJS.ProcessEnv): string {
  const lines = COMMANDS.map((c) => [`${c.path.join(" ")}${c.args.length ? " " + c.args.join(" ") : ""}`, c.summary]);
  const w = Math.max(...lines.map((l) => l[0]!.length));
  return (
    `usage: amphora [global options] COMMAND [ARGS] [options]\n\n` +
    `Drives amphora agents: load balancers (haproxy), certificates, network, VRRP, stats.\n\n` +
    `commands:\n${lines.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`).join("\n")}\n\n` +
    `global options:\n${optionLines(GLOBAL_OPTIONS)}\n` +
    `Settings come from flags, then AMPHORA_* environment variables, then the config\n` +
    `file (${defaultConfigPath(env)} unless --cli-config/AMPHORA_CONFIG), e.g.\n` +
    `  {"agent": "https://192.0.2.10:9443", "ca": "ca.pem", "cert": "client.pem", "key": "client-key.pem",\n` +
    `   "profiles": {"dev": {"agent": "https://127.0.0.1:9443", "devState": "/path/to/state"}}}\n` +
    `(paths relative to the file). The agent defaults to https://127.0.0.1:9443.\n` +
    `With several --agent, the command runs on each and reports each result.\n\n` +
    `'amphora COMMAND --help' describes a command.\n\n${EXIT_CODES_HELP}`
  );
}

export function commandHelp(c: Command): string {
  return (
    `usage: ${usageOf(c)}\n\n${c.summary}\n${c.help ? `\n${c.help}\n` : ""}` +
    (c.options ? `\noptions:\n${optionLines(c.options)}` : "") +
    (c.local ? "" : `\nglobal options: --agent URL --ca FILE --cert FILE --key FILE --dev-state DIR --json ... (see amphora --help)\n`)
  );
}

export function groupHelp(group: string, cmds: Command[]): string {
  const w = Math.max(...cmds.map((c) => usageOf(c).length));
  return `commands of 'amphora ${group}':\n${cmds.map((c) => `  ${usageOf(c).padEnd(w)}  ${c.summary}`).join("\n")}\n\n'amphora ${group} SUBCOMMAND --help' for details.\n`;
}
