#!/usr/bin/env bash
# Builds the Debian package target/debian/ironsec_<version>_<arch>.deb and prints its path last.
# Needs cargo-deb (`cargo install cargo-deb --locked`; tests/install-deps.sh installs it); no root.
#
# 1. crates/gen-assets writes what the package takes from the build into packaging/build/
#    (git-ignored, remade every time): man pages and bash/zsh/fish completions from the clap
#    definitions, the packaged unit (systemd/ironsecd.service with the binaries in /usr/sbin)
#    and the Debian changelog naming the commit.
# 2. cargo deb builds the release binaries and the package from [package.metadata.deb] in
#    crates/ironsecd/Cargo.toml.
#
# The maintainer recorded in the package and changelog is whoever builds it: DEBFULLNAME and
# DEBEMAIL (as dch reads them), else the user's name and user@host. The changelog's date is
# SOURCE_DATE_EPOCH, else the commit's (the same commit gives the same changelog), else now.
# Install: dpkg -i target/debian/ironsec_*.deb (README, "Installing").
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: cargo-deb is missing: cargo install cargo-deb --locked (tests/install-deps.sh does)" >&2
    exit 1
fi

version=$(awk '/^\[workspace\.package\]/ { s = 1; next } /^\[/ { s = 0 }
               s && $1 == "version" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
[ -n "$version" ] || { echo "build-deb.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
deb_version="$version-1"

user=$(id -un)
name=${DEBFULLNAME:-$(getent passwd "$user" | cut -d: -f5 | cut -d, -f1)}
maintainer="${name:-$user} <${DEBEMAIL:-$user@$(hostname -f 2>/dev/null || hostname)}>"

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    epoch=$SOURCE_DATE_EPOCH
elif ! epoch=$(git log -1 --format=%ct 2>/dev/null); then
    epoch=$(date +%s)
fi
date=$(LC_ALL=C date -u -R -d "@$epoch")

rm -rf packaging/build
cargo run --release --locked --quiet -p ironsec-gen-assets -- packaging/build \
    --deb-version "$deb_version" --maintainer "$maintainer" --date "$date" >/dev/null
# --strip: the release profile keeps line tables for profiling (Cargo.toml); the package does
# not need them (90 MB of binaries otherwise).
cargo deb -p ironsecd --strip --deb-version "$deb_version" --maintainer "$maintainer" -- --locked
