// Package zzglob stands in for drjosh.dev/zzglob, which the Go module proxy refuses (403) and
// which buildkite-agent needs only for `pipeline upload` if_changed, `artifact upload` and cache
// keys: none of them runs in the tests that use this build (agent start, registration, ping).
// Matching uses path.Match; walking the filesystem is refused with an error naming this stub.
// Written for tools/agents/build.sh; not a copy of the original.
package zzglob

import (
	"context"
	"errors"
	"io/fs"
	"path"
)

var errStub = errors.New("zzglob: globbing is not available in this test build of buildkite-agent (tools/agents/zzglob-stub)")

type Pattern struct{ pattern string }

type ParseOption func(*Pattern)

type GlobOption func()

func ExpandTilde(bool) ParseOption { return func(*Pattern) {} }

func WalkIntermediateDirs(bool) GlobOption { return func() {} }

func TraverseSymlinks(bool) GlobOption { return func() {} }

func Parse(pattern string, opts ...ParseOption) (*Pattern, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	return &Pattern{pattern: pattern}, nil
}

func (p *Pattern) Match(name string) bool {
	ok, _ := path.Match(p.pattern, name)
	return ok
}

func (p *Pattern) Glob(fs.WalkDirFunc, ...GlobOption) error { return errStub }

func MultiGlob(context.Context, []*Pattern, fs.WalkDirFunc, ...GlobOption) error { return errStub }
