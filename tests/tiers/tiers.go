// Package tiers decides whether a slow test tier runs on this machine, and keeps the record that
// `make test` prints at the end: one line per tier, ran or not run and why. `go test` without -v
// hides every t.Skip message, so a skipped tier would otherwise be invisible.
//
// EMAILCLIENT_REQUIRE_TIERS (comma-separated tier names) turns a missing prerequisite into a failure
// (.ci/run sets it for every tier the machine supports). EMAILCLIENT_TIER_REPORT names the file the
// verdicts are appended to, one "tier NAME: ..." line each; Makefile's test target prints it.
package tiers

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// Names of the tiers.
const (
	Redis  = "redis"
	Celery = "celery"
	Docker = "docker"
	Engine = "pulumi-engine"
	// S3 is a real S3-compatible server (SeaweedFS's weed, deployment/scripts/build-seaweedfs.sh) for
	// the remote-backup tests.
	S3 = "s3"
)

// Required reports whether EMAILCLIENT_REQUIRE_TIERS names tier.
func Required(tier string) bool {
	return slices.Contains(strings.Split(os.Getenv("EMAILCLIENT_REQUIRE_TIERS"), ","), tier)
}

// Require lets the test run when missing is empty (recording that the tier ran); otherwise it records
// "NOT RUN: <missing>" and skips the test, or fails it when the tier is required.
func Require(t testing.TB, tier, missing string) {
	t.Helper()
	if missing == "" {
		record(fmt.Sprintf("tier %s: ran", tier))
		return
	}
	line := fmt.Sprintf("tier %s: NOT RUN: %s", tier, missing)
	if Required(tier) {
		record(fmt.Sprintf("tier %s: FAILED: required by EMAILCLIENT_REQUIRE_TIERS, but %s", tier, missing))
		t.Fatalf("tier %s is required (EMAILCLIENT_REQUIRE_TIERS) but %s", tier, missing)
		return
	}
	record(line)
	t.Skip(line)
}

// record appends a verdict line to EMAILCLIENT_TIER_REPORT (duplicates are merged when printed).
func record(line string) {
	path := os.Getenv("EMAILCLIENT_TIER_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tiers: cannot record %q in %s: %v\n", line, path, err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}
