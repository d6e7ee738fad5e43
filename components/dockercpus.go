package components

import (
	"fmt"
	"math/big"
	"strings"
)

// DockerCPUs is a CPU limit ("2", "1.5") as the Docker provider reads it back from the engine (2 ->
// "2.0", 1.50 -> "1.5", 10 -> "10."): declaring any other spelling of the same number shows a diff on
// every preview, and cpus replaces the container (pulumi-docker 4.10.0 / terraform-provider-docker
// nanoInt64ToDecimalString). An error when the value has no spelling that survives the round trip
// (e.g. 0.05, which the provider reads back as "0.1").
func DockerCPUs(cpus string) (string, error) {
	nanos, ok := cpuNanos(cpus)
	if !ok {
		return "", fmt.Errorf("%q is not a number of CPUs", cpus)
	}
	back := ReadBackCPUs(nanos)
	if again, ok := cpuNanos(back); !ok || again != nanos {
		return "", fmt.Errorf("the Docker provider reads %s CPUs back as %q, a different limit, and would replace the container on every deploy", cpus, back)
	}
	return back, nil
}

// cpuNanos parses cpus as the engine's client does (docker/opts.ParseCPUs): a decimal number of CPUs
// to whole nano-CPUs.
func cpuNanos(cpus string) (int64, bool) {
	r, ok := new(big.Rat).SetString(cpus)
	if !ok || r.Sign() <= 0 {
		return 0, false
	}
	n := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
	if !n.IsInt() || !n.Num().IsInt64() {
		return 0, false
	}
	return n.Num().Int64(), true
}

// ReadBackCPUs mirrors the provider's nanoInt64ToDecimalString, quirks included: it counts every "0"
// of the 9-decimal form, so 10 CPUs read back as "10." and 0.05 as "0.1".
func ReadBackCPUs(nanos int64) string {
	r := new(big.Rat).SetFrac64(nanos, 1e9)
	s := r.FloatString(9)
	if strings.Count(s, "0") == 9 {
		return r.FloatString(1)
	}
	return strings.TrimRight(s, "0")
}

// dockerCPUs is CPUs as declared to the provider: empty (no limit) or its DockerCPUs spelling.
func (c RedisContainer) dockerCPUs() string {
	s, err := DockerCPUs(c.CPUs)
	if err != nil {
		return c.CPUs // empty; anything else was refused by Validate
	}
	return s
}
