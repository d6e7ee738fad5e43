package ops

import (
	"strings"
	"testing"
)

// TestConnUsageErrors: a bad --addr, --url/REDIS_URL or --password-file is a
// usage error (exit 2) on one stderr line naming the flag, with no health
// verdict and no password (cli fails the test if testPassword is printed).
func TestConnUsageErrors(t *testing.T) {
	dir := t.TempDir()
	secretURL := "redis://ops:" + testPassword + "@127.0.0.1:badport/0"
	cases := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"addr with newline", nil, []string{"--addr", "127.0.0.1:1\nINFO"}, `--addr/REDIS_ADDR "127.0.0.1:1\nINFO"`},
		{"addr with space", nil, []string{"--addr", "127.0.0.1 :6379"}, "--addr"},
		{"addr without port", nil, []string{"--addr", "127.0.0.1"}, "--addr"},
		{"addr port 0", nil, []string{"--addr", "127.0.0.1:0"}, "port 1-65535"},
		{"addr port 65536", nil, []string{"--addr", "[::1]:65536"}, "--addr"},
		{"addr port name", nil, []string{"--addr", "localhost:redis"}, "--addr"},
		{"REDIS_ADDR with tab", map[string]string{"REDIS_ADDR": "127.0.0.1:6379\t"}, nil, "--addr/REDIS_ADDR"},
		{"password file missing", nil, []string{"--password-file", dir + "/missing"}, "--password-file/REDIS_PASSWORD_FILE: read password file: open " + dir + "/missing"},
		{"password file is a directory", map[string]string{"REDIS_PASSWORD_FILE": dir}, nil, "--password-file/REDIS_PASSWORD_FILE: read password file: read " + dir},
		{"url with bad port", nil, []string{"--url", secretURL}, `--url/REDIS_URL "redis://ops:xxxxx@127.0.0.1:badport/0": invalid port ":badport" after host`},
		{"REDIS_URL with bad port", map[string]string{"REDIS_URL": secretURL}, nil, `--url/REDIS_URL "redis://ops:xxxxx@127.0.0.1:badport/0"`},
		{"url with bad scheme", nil, []string{"--url", "http://ops:" + testPassword + "@127.0.0.1:6379"}, "--url/REDIS_URL"},
		{"url with newline", nil, []string{"--url", "redis://ops:" + testPassword + "@127.0.0.1:6379\n"}, "--url/REDIS_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, "127.0.0.1:1", tc.vars, append([]string{"health"}, tc.args...)...)
			if r.code != ExitUsage || r.stdout != "" || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want exit 2 and one stderr line containing %q: %v", tc.want, r)
			}
		})
	}
	// The long-running commands check the connection flags at start.
	for _, args := range [][]string{
		{"schedule", "--every", "2s", "--dir", dir, "--addr", "127.0.0.1:1\n"},
		{"metrics", "--listen", "127.0.0.1:0", "--password-file", dir},
	} {
		if r := cli(t, "127.0.0.1:1", nil, args...); r.code != ExitUsage || r.stdout != "" {
			t.Errorf("%v: want exit 2: %v", args[0], r)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ raw, want, password string }{
		{"redis://ops:pw@host:6379/0", "redis://ops:xxxxx@host:6379/0", "pw"},
		{"redis://:pw@host:badport", "redis://:xxxxx@host:badport", "pw"},
		{"redis://ops:p/w@rd@host:1/0", "redis://ops:xxxxx@host:1/0", "p/w@rd"}, // unescaped / and @
		{"redis://ops@host:6379", "redis://ops@host:6379", ""},
		{"redis://host:6379/0", "redis://host:6379/0", ""},
		{"ops:pw@host", "ops:xxxxx@host", "pw"}, // no scheme
		{"", "", ""},
	} {
		if got := redactURL(c.raw); got != c.want {
			t.Errorf("redactURL(%q) = %q, want %q", c.raw, got, c.want)
		}
		if got := urlPassword(c.raw); got != c.password {
			t.Errorf("urlPassword(%q) = %q, want %q", c.raw, got, c.password)
		}
	}
}
