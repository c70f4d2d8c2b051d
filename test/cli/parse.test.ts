// The command line parser alone (no agent, no child process): which
// command runs with which arguments, help and version requests, and the
// "did you mean" of a mistyped command, subcommand or option.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCommandLine } from "../../src/cli/parse.js";
import { UsageError } from "../../src/cli/exit-codes.js";
import { editDistance, suggestions } from "../../src/cli/suggest.js";

const usage = (argv: string[]): UsageError => {
  try {
    parseCommandLine(argv);
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    return e;
  }
  assert.fail(`no usage error for ${argv.join(" ")}`);
};

test("the longest command path wins; arguments and options come apart", () => {
  const p = parseCommandLine(["--agent", "192.0.2.1", "interface", "rules", "192.0.2.10", "rules.json", "--json"]);
  assert.equal(p.kind, "run");
  if (p.kind !== "run") return;
  assert.deepEqual(p.command.path, ["interface", "rules"]);
  assert.deepEqual(p.args, ["192.0.2.10", "rules.json"]);
  assert.deepEqual(p.opts.agent, ["192.0.2.1"]);
  assert.equal(p.opts.json, true);
  const one = parseCommandLine(["interface", "192.0.2.10"]);
  assert.ok(one.kind === "run" && one.command.path.join(" ") === "interface");
});

test("help and version requests", () => {
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
  const top = parseCommandLine(["--help"]);
  assert.ok(top.kind === "help" && top.asked && /commands:/.test(top.text));
  const bare = parseCommandLine([]);
  assert.ok(bare.kind === "help" && !bare.asked, "nothing to run: help on stderr, exit 2");
  const group = parseCommandLine(["lb"]);
  assert.ok(group.kind === "help" && !group.asked && /amphora lb reload LB_ID/.test(group.text));
  const cmd = parseCommandLine(["lb", "stop", "--help"]);
  assert.ok(cmd.kind === "help" && cmd.asked && /--stop-timeout MS/.test(cmd.text));
});

test("usage errors: missing and extra arguments, options of another command", () => {
  assert.match(usage(["lb", "start"]).message, /missing LB_ID/);
  assert.match(usage(["info", "extra"]).message, /unexpected argument 'extra'/);
  assert.match(usage(["info", "--stop-timeout", "5"]).message, /'amphora info' has no option --stop-timeout/);
});

test("did you mean: mistyped commands, subcommands and options get the closest known words", () => {
  const cmd = usage(["infp"]);
  assert.match(cmd.message, /unknown command 'infp'/);
  assert.match(cmd.usage, /did you mean 'info'\?/);
  const sub = usage(["lb", "stat", "x"]);
  assert.match(sub.message, /unknown subcommand 'lb stat'/);
  assert.match(sub.usage, /did you mean 'lb status' or 'lb start'\?/);
  assert.match(usage(["vrrp", "relaod"]).usage, /did you mean 'vrrp reload'\?/, "two letters swapped");
  assert.match(usage(["info", "--jsn"]).usage, /did you mean '--json'\?/);
  assert.match(usage(["lb", "apply", "x", "--config", "f", "--wiat"]).usage, /did you mean '--wait'\?/);
  assert.match(usage(["lb", "stop", "x", "--stop-timout", "5"]).usage, /did you mean '--stop-timeout'\?/);
  assert.match(usage(["interface", "rulez", "192.0.2.1", "f"]).usage, /did you mean 'interface rules'\?/);
  assert.doesNotMatch(usage(["zzzzzzzz"]).usage, /did you mean/, "nothing close: no guess");
});

test("edit distance counts a swap of neighbours as one", () => {
  assert.equal(editDistance("reload", "relaod"), 1);
  assert.equal(editDistance("info", "infp"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.deepEqual(suggestions("st", ["status", "start", "stop", "list"]), ["start", "status", "stop"]);
});
