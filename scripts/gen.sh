#!/usr/bin/env bash
# Builds the contract: a descriptor image of proto/ (build/image.binpb),
# buf lint on it, and the generated TypeScript in src/gen.
#   scripts/gen.sh              lint + generate
#   scripts/gen.sh --lint-only  lint only
#   scripts/gen.sh --image DIR OUT   just build an image of the protos in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
node --import tsx scripts/write-deps-image.ts build/deps.binpb >/dev/null

image() { # image PROTO_DIR OUT
  protoc --descriptor_set_in=build/deps.binpb -I "$1" --include_imports --include_source_info \
    -o "$2" $(cd "$1" && find . -name '*.proto' | sed 's|^\./||' | sort)
}

if [ "${1:-}" = "--image" ]; then image "$2" "$3"; exit 0; fi
image proto build/image.binpb
npx buf lint build/image.binpb
[ "${1:-}" = "--lint-only" ] && exit 0
rm -rf src/gen
npx buf generate
echo "generated src/gen from build/image.binpb"
