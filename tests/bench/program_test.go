package bench

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/tests/declared"
)

// BenchmarkProdProgram evaluates the full prod program (stacks.Program with the real Pulumi.prod.yaml)
// under the mocks of tests/declared: settings, validation, redis.conf rendering and every resource
// registration. Compare with BenchmarkEmptyProgram (same harness, a program that declares nothing)
// in the same run: bench.sh reports the ratio of the medians.
func BenchmarkProdProgram(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r, err := declared.Run("prod", declared.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Resources) == 0 {
			b.Fatal("the prod program declared nothing")
		}
	}
}

// BenchmarkEmptyProgram is the baseline of BenchmarkProdProgram: the same mock harness and stack file,
// a program that declares nothing.
func BenchmarkEmptyProgram(b *testing.B) {
	b.ReportAllocs()
	empty := func(*pulumi.Context) error { return nil }
	for i := 0; i < b.N; i++ {
		if _, err := declared.Run("prod", declared.Options{Program: empty}); err != nil {
			b.Fatal(err)
		}
	}
}
