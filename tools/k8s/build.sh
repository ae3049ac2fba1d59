#!/usr/bin/env bash
# Builds the real Kubernetes control plane used by the tests (npm run k8s:build), from the Go
# module proxy, into a cache outside the repository keyed by version. A second run with the
# binaries present takes well under a second; Go's own module and build caches make a rebuild
# after a version bump incremental.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler  k8s.io/kubernetes  KUBE_VERSION
#   etcd                                                     go.etcd.io/etcd/server/v3, the version KUBE_VERSION pins
#   kwok                                                     sigs.k8s.io/kwok   KWOK_VERSION
#
# `go install k8s.io/kubernetes/...@v` refuses (its go.mod replaces the k8s.io/* staging modules
# with local paths), so a small module of ours requires it and replaces each staging module with
# the published v0.X.Y of the same release.
#
#   tools/k8s/build.sh           build what is missing, print the bin folder
#   tools/k8s/build.sh --check   print the bin folder if everything is built, else exit 3 (builds nothing)
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.35.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${K8S_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ci-agent-autoscaler/k8s}"
BIN="$CACHE/$KUBE_VERSION-kwok-$KWOK_VERSION/bin"
all=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

missing=()
for b in "${all[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$BIN"; exit 0; fi
if [ "${1:-}" = "--check" ]; then echo "not built: ${missing[*]} (in $BIN); run: npm run k8s:build" >&2; exit 3; fi

command -v go >/dev/null || { echo "Go is needed to build the Kubernetes control plane (go.dev/doc/install)" >&2; exit 1; }
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0
mkdir -p "$BIN"
src="$CACHE/$KUBE_VERSION-kwok-$KWOK_VERSION/src"
mkdir -p "$src"
start=$(date +%s)
minor="v0.${KUBE_VERSION#v1.}"
kube_minor="${KUBE_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
# k8s.io/kubernetes's go.mod (its staging modules and the etcd it pins), through the go command,
# so whatever GOPROXY the machine uses applies.
kubemod_file="$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')"
[ -f "$kubemod_file" ] || { echo "cannot download k8s.io/kubernetes@$KUBE_VERSION's go.mod" >&2; exit 1; }
kubemod="$(cat "$kubemod_file")"
staging=$(printf '%s\n' "$kubemod" | sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/.*#\1#p')
etcd_version=$(printf '%s\n' "$kubemod" | sed -nE 's#^\s*go\.etcd\.io/etcd/server/v3 (v[0-9.]+).*#\1#p')

if printf '%s\n' "${missing[@]}" | grep -qE '^kube-'; then
  cd "$src"
  {
    echo "module ci-agent-autoscaler/k8s-build"
    echo "go 1.25"
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    for m in $staging; do echo "replace $m => $m $minor"; done
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  go mod tidy -e >/dev/null 2>&1 || true
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kube_minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$BIN/$b" ] && continue
    echo "building $b $KUBE_VERSION" >&2
    go build -trimpath -ldflags "$ldflags" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b" && mv "$BIN/$b.tmp" "$BIN/$b"
  done
fi
if [ ! -x "$BIN/etcd" ]; then
  # Like k8s.io/kubernetes, etcd's server module replaces its sibling modules with local paths,
  # so `go install go.etcd.io/etcd/server/v3@v` refuses too: build its main package from a
  # small module of ours that requires it (its siblings resolve to the same published version).
  echo "building etcd $etcd_version" >&2
  mkdir -p "$src/etcd" && cd "$src/etcd"
  printf 'module ci-agent-autoscaler/etcd-build\ngo 1.25\nrequire go.etcd.io/etcd/server/v3 %s\n' "$etcd_version" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy -e >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 && mv "$BIN/etcd.tmp" "$BIN/etcd"
fi
if [ ! -x "$BIN/kwok" ]; then
  echo "building kwok $KWOK_VERSION" >&2
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
