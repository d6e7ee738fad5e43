package reliability_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/stacks"
)

// token is what a redis.conf argument may be: one word without whitespace, quotes, backslashes or
// control characters ("" is rendered quoted).
var token = regexp.MustCompile(`^[^\s"'\\\x00-\x1f\x7f]*$`)

// FuzzSettings feeds arbitrary JSON for the redis, container and celery objects to the settings
// loader: it never panics, and whenever it accepts, the rendered redis.conf has one directive per
// line, every value a single token, and the Celery env single-line values.
//
//	go test ./tests/reliability -run '^$' -fuzz FuzzSettings -fuzztime 20s
func FuzzSettings(f *testing.F) {
	for _, seed := range [][3]string{
		{``, ``, ``},
		{`{"maxmemory":"1gb"}`, `{"hostPort":0}`, `{"workerConcurrency":8}`},
		{`{"maxmemory":"1gb\nrequirepass x"}`, `{"name":"a b"}`, `{"logLevel":"info\nx"}`},
		{`{"save":[{"seconds":1,"changes":1}],"appendfsync":"always"}`, `{"dataHostPath":"/srv/x"}`, `{"acceptContent":["json","yaml"]}`},
		{`{"maxmemoryPolicy":"allkeys-lru","acknowledgeUnsafeEviction":true}`, `{"hostIp":"::1"}`, `{"database":15}`},
		{`{"save":null,"loglevel":"warning","port":1}`, `null`, `{"resultExpires":1}`},
		{`{"MAXMEMORY":"2048\u212Ab","port":6380,"port":6381}`, `{"memory":"1gb"}`, `{}`},
		{`{"autoAofRewriteMinSize":"0","autoAofRewritePercentage":0}`, `{"log":{"maxSize":"1k","maxFile":1}}`, `{"taskTimeLimit":10,"taskSoftTimeLimit":9,"visibilityTimeout":11}`},
		{`[`, `{"x":1}`, `"str"`},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, redisJSON, containerJSON, celeryJSON string) {
		values := map[string]string{}
		for key, v := range map[string]string{stacks.KeyRedis: redisJSON, stacks.KeyContainer: containerJSON, stacks.KeyCelery: celeryJSON} {
			if v != "" {
				values[key] = v
			}
		}
		s, err := stacks.Load("dev", stacks.MapSource{Values: values})
		if err != nil {
			return
		}
		conf := s.Redis.Render()
		lines := strings.Split(strings.TrimSuffix(conf, "\n"), "\n")
		directives := s.Redis.Directives()
		if len(lines) != len(directives)+2 {
			t.Fatalf("%d lines for %d directives:\n%s", len(lines), len(directives), conf)
		}
		for i, d := range directives {
			line := lines[i+2]
			if !strings.HasPrefix(line, d.Name) {
				t.Fatalf("line %d is %q, want directive %s", i+2, line, d.Name)
			}
			for _, a := range d.Args {
				if !token.MatchString(a) || (a == "" && d.Name != "save" && d.Name != "logfile") {
					t.Fatalf("directive %s: argument %q is not a single token", d.Name, a)
				}
			}
		}
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\x00") {
				t.Fatalf("control character in line %q", l)
			}
		}
		want := map[string]bool{}
		for _, d := range redisconf.Defaults().Directives() {
			want[d.Name] = true
		}
		for _, d := range directives {
			if !want[d.Name] {
				t.Fatalf("directive %s is not one of the declared ones", d.Name)
			}
		}
		for k, v := range s.Celery.CeleryEnv() {
			if !token.MatchString(v) || v == "" {
				t.Fatalf("env %s=%q is not a single-line value", k, v)
			}
		}
	})
}
