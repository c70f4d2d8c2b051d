// Every subcommand of `amphora`, in the order `amphora --help` lists them.
// One file per command group (by the service it calls); `completion` needs
// no agent and prints a script built from this very list.
import type { Command } from "../command.js";
import { completionScript, SHELLS } from "../completion.js";
import { UsageError } from "../exit-codes.js";
import { GLOBAL_OPTIONS } from "../global-options.js";
import { certificateCommands } from "./certificate.js";
import { keepalivedCommands } from "./keepalived.js";
import { loadBalancerCommands } from "./load-balancer.js";
import { networkCommands } from "./network.js";
import { statsCommands } from "./stats.js";
import { eventCommands } from "./events.js";
import { agentCommands, systemCommands } from "./system.js";

const completion: Command = {
  path: ["completion"],
  args: ["SHELL"],
  argWords: [...SHELLS],
  summary: "print a shell completion script (bash or zsh)",
  help: "bash: source <(amphora completion bash)   (or save it under /etc/bash_completion.d/amphora)\nzsh:  source <(amphora completion zsh)    (in ~/.zshrc)",
  local: (args) => {
    const shell = args[0]!;
    if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`completion: unknown shell '${shell}' (bash or zsh)`);
    return completionScript(shell as (typeof SHELLS)[number], COMMANDS, GLOBAL_OPTIONS);
  },
  run: () => Promise.reject(new Error("completion runs locally")),
};

export const COMMANDS: Command<any>[] = [
  ...systemCommands,
  ...loadBalancerCommands,
  ...certificateCommands,
  ...networkCommands,
  ...keepalivedCommands,
  ...agentCommands,
  ...statsCommands,
  ...eventCommands,
  completion,
];

/** Groups for help: first words of the command paths. */
export function commandGroups(): Map<string, Command[]> {
  const m = new Map<string, Command[]>();
  for (const c of COMMANDS) {
    const g = c.path[0]!;
    m.set(g, [...(m.get(g) ?? []), c]);
  }
  return m;
}
