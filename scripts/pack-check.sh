#!/usr/bin/env bash
# The package as a user installs it: `npm pack`, install the tarball into an
# empty folder with `npm install --omit=dev`, then, from that folder, start
# `npx amphora-agent --dev`, call it with `npx amphora info` and import
# `amphora-agent/driver` from plain node. All of it must run from dist/
# (AMPHORA_REQUIRE_DIST=1: no fallback to the sources) with no TypeScript
# loader and no dev dependency installed. Cleans up its agent and folder.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d /tmp/amphora-pack-check.XXXXXX)
agent_pgid=""
cleanup() {
  if [ -n "$agent_pgid" ]; then
    kill -TERM -- "-$agent_pgid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$agent_pgid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$agent_pgid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== npm pack"
tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
mkdir "$work/app"
cd "$work/app"
printf '{"name":"pack-check","version":"0.0.0","private":true,"type":"module"}\n' > package.json
npm install --omit=dev --no-audit --no-fund --silent "$work/$tarball"
for dev in tsx typescript @bufbuild/buf @bufbuild/protoc-gen-es; do
  if [ -e "node_modules/$dev" ]; then echo "pack-check: dev dependency $dev got installed" >&2; exit 1; fi
done
pkg=node_modules/amphora-agent
[ -f "$pkg/dist/agent/main.js" ] || { echo "pack-check: $pkg/dist/agent/main.js missing" >&2; exit 1; }
export AMPHORA_REQUIRE_DIST=1

echo "== npx amphora-agent --dev"
# Its own process group, so cleanup ends npx and the agent it started, and nothing else.
setsid npx amphora-agent --dev --state-dir "$work/state" --listen 127.0.0.1:0 >"$work/agent.log" 2>&1 &
agent_pgid=$!
url=""
for _ in $(seq 300); do
  url=$(sed -n 's/.*"url":"\([^"]*\)".*"msg":"agent listening".*/\1/p' "$work/agent.log" | head -1)
  [ -n "$url" ] && break
  kill -0 "$agent_pgid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then echo "pack-check: the agent did not start:" >&2; cat "$work/agent.log" >&2; exit 1; fi
echo "listening at $url"

echo "== npx amphora info"
XDG_CONFIG_HOME="$work/no-config" npx amphora --agent "$url" --dev-state "$work/state" info --json | tee "$work/info.json"
grep -q '"amphora_id"' "$work/info.json"

echo "== import amphora-agent/driver from plain node"
P="$work/state/pki"
URL=$url CA=$P/ca.pem CERT=$P/client.pem KEY=$P/client-key.pem node --input-type=module -e '
  const { readFileSync } = await import("node:fs");
  const { createAmphoraClient } = await import("amphora-agent/driver");
  const pem = (f) => readFileSync(process.env[f], "utf8");
  const c = createAmphoraClient({ baseUrl: process.env.URL, ca: pem("CA"), cert: pem("CERT"), key: pem("KEY") });
  const v = await c.system.getApiVersion({});
  c.close();
  if (v.apiVersion !== "1.0") throw new Error(`unexpected api version ${v.apiVersion}`);
  console.log(`driver: api version ${v.apiVersion}`);
'
# Nothing ran through a TypeScript loader: no .ts file of the package was loaded.
if grep -q 'running the sources' "$work/agent.log"; then echo "pack-check: the agent ran its sources" >&2; exit 1; fi
echo "pack-check: ok (package from $repo)"
