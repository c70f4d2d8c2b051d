// `amphora completion bash|zsh`: the script is generated from the command
// table; here it runs in a real bash, completing what an operator types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { completionScript } from "../../src/cli/completion.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { GLOBAL_OPTIONS } from "../../src/cli/global-options.js";
import { parseCommandLine } from "../../src/cli/parse.js";

/** What bash offers for the words typed so far (the last one is being completed). */
function complete(script: string, words: string[], cwd: string): string[] {
  const arr = ["amphora", ...words].map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(" ");
  const out = execFileSync("bash", ["--norc", "-c", `source /dev/stdin <<'EOF'\n${script}\nEOF\nCOMP_WORDS=(${arr}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _amphora; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd, encoding: "utf8" });
  return out.split("\n").filter(Boolean).sort();
}

test("bash completion: commands, subcommands, options, option values and files", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amt-compl-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "haproxy.cfg"), "");
  writeFileSync(join(dir, "ha.pem"), "");
  const script = completionScript("bash", COMMANDS, GLOBAL_OPTIONS);
  assert.match(script, /complete -F _amphora amphora\n$/);
  assert.deepEqual(complete(script, ["l"], dir), ["lb", "listeners"]);
  assert.deepEqual(complete(script, ["lb", "st"], dir), ["start", "status", "stop"]);
  // Global options and their values are skipped when finding the command.
  assert.deepEqual(complete(script, ["--agent", "192.0.2.1", "--protocol", "grpc", "lb", "re"], dir), ["reload"]);
  assert.deepEqual(complete(script, ["--protocol", "grpc"], dir), ["grpc", "grpcweb"]);
  assert.ok(complete(script, ["lb", "apply", "x", "--w"], dir).includes("--wait-timeout"), "the command's own options");
  assert.ok(complete(script, ["lb", "apply", "x", "--"], dir).includes("--json"), "and the global ones");
  assert.deepEqual(complete(script, ["lb", "apply", "x", "--config", "ha"], dir), ["ha.pem", "haproxy.cfg"]);
  assert.deepEqual(complete(script, ["config", "put", "x", "hap"], dir), ["haproxy.cfg"], "FILE arguments complete file names");
  assert.deepEqual(complete(script, ["completion", ""], dir), ["bash", "zsh"]);
  assert.deepEqual(complete(script, ["lb", "start", ""], dir), [], "an id: nothing to guess");
});

test("zsh completion loads the same function through bashcompinit", () => {
  const script = completionScript("zsh", COMMANDS, GLOBAL_OPTIONS);
  assert.match(script, /^#compdef amphora\n/);
  assert.match(script, /autoload -U \+X bashcompinit && bashcompinit/);
  assert.match(script, /complete -F _amphora amphora\n$/);
});

test("amphora completion is a local command: no agent or credentials needed", () => {
  const p = parseCommandLine(["completion", "bash"]);
  assert.ok(p.kind === "run" && p.command.local);
  if (p.kind === "run") assert.match(p.command.local!(p.args, p.opts), /_amphora\(\)/);
});
