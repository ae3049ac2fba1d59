#!/usr/bin/env bash
# Builds the real CI agents the agent-template tests run (npm run agents:build), from the Go
# module proxy, into a cache outside the repository keyed by version. A second run with the
# binaries present takes well under a second. Prints one path per line: the binaries.
#
#   buildkite-agent  github.com/buildkite/agent/v3        BUILDKITE_AGENT_VERSION (main package at the module root)
#   gitlab-runner    gitlab.com/gitlab-org/gitlab-runner  GITLAB_RUNNER_VERSION
#
# Each is built from a small module of ours that requires the agent's module:
# - buildkite-agent needs drjosh.dev/zzglob, whose every version the proxy refuses (403), so our
#   module replaces it with tools/agents/zzglob-stub (globbing for `pipeline upload` if_changed,
#   `artifact upload` and cache keys; nothing the tests run).
# - gitlab-runner's go.mod has a replace directive (helpers/runner_wrapper/api => ./...), so
#   `go install …@version` refuses it; in our module the version it requires (v0.1.1) comes from
#   the proxy. Its release tags (v19.x.y) are not valid versions of its module path (a v2+ module
#   needs a /v19 suffix): the proxy answers 403 "This module version is not available" to
#   `@v19.2.2` and serves only pseudo-versions of commits on the default branch, so we ask for the
#   newest one (`go list -m gitlab.com/gitlab-org/gitlab-runner@latest`).
#   IT DOES NOT BUILD through the proxy this project can reach: the proxy answers 403 "This module
#   version is not available" for the sources (.zip) of nine gitlab.com modules it needs:
#   gitlab.com/gitlab-org/step-runner v0.44.0, gitlab.com/gitlab-org/labkit/v2 v2.29.2,
#   gitlab.com/gitlab-org/moa, gitlab.com/gitlab-org/fleeting/{fleeting, fleeting/metrics/prometheus,
#   nesting v0.5.0, taskscaler, taskscaler/metrics/prometheus}, gitlab.com/ajwalker/phrasestream
#   and gitlab.com/gitlab-org/gitlab-runner/helpers/runner_wrapper/api v0.1.1. Hence the default
#   target is buildkite-agent only, and test/agents/gitlab-runner.test.ts runs a stand-in that
#   reproduces run-single from its source. `tools/agents/build.sh gitlab-runner` tries anyway.
#
# The GitHub runner (actions/runner) is .NET, not Go: test/agents/github-runner-exit.test.ts
# reproduces its run-helper.sh exit mapping instead.
#
# Measured here (2 shared cores): buildkite-agent v3.137.0 built in 1215 s the first time.
set -euo pipefail
BUILDKITE_AGENT_VERSION="${BUILDKITE_AGENT_VERSION:-v3.137.0}"
GITLAB_RUNNER_VERSION="${GITLAB_RUNNER_VERSION:-v1.11.1-0.20260903214710-fc1f1862bd91}"
CACHE="${AGENTS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ci-agent-autoscaler/agents}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
only="${1:-buildkite-agent}" # buildkite-agent | gitlab-runner | all

build() { # name module version package [go.mod lines...]
  local name="$1" module="$2" version="$3" pkg="$4"; shift 4
  local dir="$CACHE/$name-$version"
  if [ -x "$dir/bin/$name" ]; then echo "$dir/bin/$name"; return; fi
  command -v go >/dev/null || { echo "Go is needed to build $name (go.dev/doc/install)" >&2; exit 1; }
  mkdir -p "$dir/src" "$dir/bin"
  local start; start=$(date +%s)
  echo "building $name $version" >&2
  {
    echo "module ci-agent-autoscaler/agents-build"
    echo "go 1.26"
    echo "require $module $version"
    for line in "$@"; do echo "$line"; done
  } > "$dir/src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/src/tools.go"
  (
    cd "$dir/src"
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"
    go mod tidy -e >/dev/null 2>&1 || true
    go build -trimpath -ldflags "-s -w" -o "$dir/bin/$name.tmp" "$pkg"
  )
  mv "$dir/bin/$name.tmp" "$dir/bin/$name"
  echo "built $name in $(( $(date +%s) - start )) s" >&2
  echo "$dir/bin/$name"
}

case "$only" in
  all | buildkite-agent)
    build buildkite-agent github.com/buildkite/agent/v3 "$BUILDKITE_AGENT_VERSION" github.com/buildkite/agent/v3 \
      "replace drjosh.dev/zzglob => $HERE/zzglob-stub" ;;
esac
case "$only" in
  all | gitlab-runner)
    build gitlab-runner gitlab.com/gitlab-org/gitlab-runner "$GITLAB_RUNNER_VERSION" gitlab.com/gitlab-org/gitlab-runner ;;
esac
