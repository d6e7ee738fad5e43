package stacks_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestRenderedConfigGolden pins the redis.conf each stack runs; review a diff, then -update.
func TestRenderedConfigGolden(t *testing.T) {
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	for _, stack := range []string{"dev", "prod"} {
		s, err := stacks.LoadStackFile(root, stack)
		require.NoError(t, err)
		golden := filepath.Join("testdata", "redis."+stack+".conf")
		if *update {
			require.NoError(t, os.WriteFile(golden, []byte(s.Redis.Render()), 0o644))
		}
		want, err := os.ReadFile(golden)
		require.NoError(t, err, "run go test ./stacks -run Golden -update")
		assert.Equal(t, string(want), s.Redis.Render(), stack)
	}
}
