#!/usr/bin/env bash
# Builds the base image that the recipes' Dockerfiles name in FROM,
# debian:bookworm-slim, without a registry: debootstrap (Debian 12
# "bookworm", variant minbase, nothing more) into a folder, then
# docker import. Nothing the recipes install is added here, so a recipe
# that forgets an install step fails its build.
#
# The image is cached by a hash of this script: it is also tagged
# mainstay-e2e-base:HASH and labelled with the hash, and a second run that
# finds that tag only (re)tags it debian:bookworm-slim. Edit the script and
# the next run builds a new base.
#
# Usage: e2e/docker/base.sh [MIRROR]   (default http://deb.debian.org/debian)
# Needs root, debootstrap and a Docker daemon.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
mirror="${1:-http://deb.debian.org/debian}"
tag=debian:bookworm-slim
hash="$(cat "$0" | sha256sum | cut -c1-16)"
cache="mainstay-e2e-base:$hash"

if docker image inspect "$cache" >/dev/null 2>&1; then
  docker tag "$cache" "$tag"
  echo "base: $tag is $cache (cached)" >&2
  exit 0
fi

root="$(mktemp -d /tmp/mainstay-e2e-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base: debootstrap --variant=minbase bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2; rm -f "$root.log"
  echo "base: debootstrap failed: is $mirror reachable?" >&2; exit 1
}
rm -f "$root.log"
# What debootstrap leaves that an image should not carry.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/debootstrap

# An imported image has no configuration: give it the PATH and CMD that
# Debian's own image has.
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --change "LABEL dev.mainstay.e2e.base-recipe=$hash" \
  - "$cache" >/dev/null
docker tag "$cache" "$tag"
echo "base: built $tag as $cache" >&2
