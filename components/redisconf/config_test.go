package redisconf_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "100": 100, "100b": 100, "1k": 1000, "1kb": 1024, "1m": 1000000, "512mb": 512 << 20,
		"1g": 1000000000, "1gb": 1 << 30, "1GB": 1 << 30, "1024gb": 1 << 40,
	} {
		got, err := redisconf.ParseMemory(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "512xb", "-1mb", "1.5gb", " 1gb", "1gb ", "1025gb", "1 gb", "1gb\nrequirepass x", "٣mb", "99999999999999"} {
		_, err := redisconf.ParseMemory(in)
		assert.Error(t, err, "%q", in)
	}
}

func TestUnsafePolicies(t *testing.T) {
	for _, p := range redisconf.Policies {
		want := strings.HasPrefix(p, "allkeys-") || p == "volatile-random"
		assert.Equal(t, want, redisconf.UnsafePolicy(p), p)
	}
}

// FuzzRender: whatever a validated config holds, every rendered line is one directive; nothing can
// inject a second one (e.g. through a newline in a value).
func FuzzRender(f *testing.F) {
	f.Add("512mb", "volatile-lru", "everysec", "64mb", "notice")
	f.Add("1gb\nrequirepass x", "allkeys-lru", "always", "1mb", "debug")
	f.Fuzz(func(t *testing.T, maxmemory, policy, fsync, minSize, level string) {
		c := redisconf.Defaults()
		c.MaxMemory, c.MaxMemoryPolicy, c.AppendFsync, c.AutoAOFRewriteMinSize, c.LogLevel = maxmemory, policy, fsync, minSize, level
		if c.Validate("") != nil {
			return
		}
		lines := strings.Split(strings.TrimSuffix(c.Render(), "\n"), "\n")
		assert.Len(t, lines, len(c.Directives())+2, "one line per directive plus the header")
		for _, l := range lines {
			assert.NotContains(t, l, "requirepass")
		}
	})
}
