#!/usr/bin/env bash
# Installs a released rollbook binary into DIR and checks it against its published SHA-256.
#
#   install.sh REPOSITORY TAG DIR    # e.g. install.sh acme/rollbook v0.2.0 "$RUNNER_TEMP/bin"
#
# The release has `rollbook-TARGET.tar.gz` and `rollbook-TARGET.tar.gz.sha256` for
# x86_64-unknown-linux-musl and aarch64-unknown-linux-musl (static binaries, see
# .github/workflows/release.yml). TAG `latest` is the newest release. Uses `gh` (GH_TOKEN).
set -euo pipefail
repo=${1:?usage: install.sh REPOSITORY TAG DIR} tag=${2:?} dir=${3:?}
case $(uname -m) in
  x86_64) target=x86_64-unknown-linux-musl ;;
  aarch64 | arm64) target=aarch64-unknown-linux-musl ;;
  *) echo "install.sh: no rollbook release for $(uname -m)" >&2; exit 1 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
asset=rollbook-$target.tar.gz
if [ "$tag" = latest ]; then tag=$(gh release view --repo "$repo" --json tagName --jq .tagName); fi
gh release download "$tag" --repo "$repo" --dir "$work" --pattern "$asset" --pattern "$asset.sha256"
(cd "$work" && sha256sum --check --strict "$asset.sha256")
mkdir -p "$dir"
tar -xzf "$work/$asset" -C "$dir" rollbook
"$dir/rollbook" --version
