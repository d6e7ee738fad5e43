package components

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDockerCPUsIsWhatTheProviderReadsBack(t *testing.T) {
	for in, want := range map[string]string{"2": "2.0", "2.0": "2.0", "1.5": "1.5", "1.50": "1.5", "0.5": "0.5",
		"0.25": "0.25", "10": "10.", "1.25": "1.25", "256": "256.0", "0.12": "0.12", "0.1": "0.1"} {
		got, err := DockerCPUs(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		again, err := DockerCPUs(got)
		require.NoError(t, err, got)
		assert.Equal(t, got, again, "stable: declaring what is read back reads back the same")
	}
	for _, bad := range []string{"0.05", "0.01", "0.02", "0.1000000001", "lots", "-1", "0"} {
		_, err := DockerCPUs(bad)
		assert.Error(t, err, bad)
	}
}
