package stacks

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A single-host Sentinel stack has no placement: asking its Sentinels on an engine that does not
// answer is an error naming the engine, not a panic (the regression the real engine caught).
func TestLivePrimarySingleHostUnreachableEngine(t *testing.T) {
	s, ok := Defaults("dev", "live")
	require.True(t, ok)
	s.Topology.Mode = "sentinel"
	s.DockerHost = "tcp://127.0.0.1:1"
	primary, err := LivePrimary(s)
	require.Error(t, err)
	require.Empty(t, primary)
	require.Contains(t, err.Error(), "127.0.0.1:1")
}
