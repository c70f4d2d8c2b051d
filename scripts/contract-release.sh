#!/usr/bin/env bash
# Records the released contract: a descriptor image of proto/ at a git ref
# (default HEAD) in contract/released.binpb. CI's `buf breaking` compares the
# working protos against this file, so what counts as "released" is a
# deliberate, reviewed commit, not whatever commit happens to be old enough.
#   scripts/contract-release.sh [REF]
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-HEAD}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$ref" proto | tar -x -C "$tmp"
node --import tsx scripts/write-deps-image.ts build/deps.binpb >/dev/null
mkdir -p contract
# No source info: buf breaking needs the types, not the comments, and the
# file stays small and stable.
protoc --descriptor_set_in=build/deps.binpb -I "$tmp/proto" --include_imports \
  -o contract/released.binpb.tmp $(cd "$tmp/proto" && find . -name '*.proto' | sed 's|^\./||' | sort)
mv contract/released.binpb.tmp contract/released.binpb
echo "contract/released.binpb = proto/ at $(git rev-parse --short "$ref")"
