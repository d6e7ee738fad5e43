package reliability_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// adminCommands are refused to the celery user and allowed to ops. NOAUTH/WRONGPASS and the celery
// user's NOPERM on FLUSHALL, FLUSHDB, CONFIG, DEBUG, SHUTDOWN, KEYS, INFO, SCRIPT FLUSH and ACL LIST
// are in tests/realredis (TestAuthenticationIsEnforced); this adds the rest of the admin surface and
// checks each both ways with ACL DRYRUN, so nothing is actually shut down or replicated.
var adminCommands = [][]any{
	{"flushall"}, {"flushdb"}, {"config", "get", "maxmemory"}, {"config", "set", "appendonly", "no"}, {"config", "rewrite"},
	{"debug", "sleep", "0"}, {"shutdown", "nosave"}, {"keys", "*"}, {"script", "flush"}, {"acl", "setuser", "x", "on"},
	{"acl", "list"}, {"monitor"}, {"replicaof", "10.0.0.1", "6379"}, {"slaveof", "10.0.0.1", "6379"},
	{"migrate", "10.0.0.1", "6379", "k", "0", "1000"}, {"module", "load", "/tmp/x.so"}, {"save"}, {"bgsave"},
	{"bgrewriteaof"}, {"client", "kill", "id", "1"}, {"client", "list"}, {"failover"}, {"swapdb", "0", "1"},
	{"eval", "return 1", "0"}, {"function", "flush"}, {"slowlog", "reset"}, {"latency", "reset"}, {"sync"},
	{"psync", "?", "-1"}, {"scan", "0"}, {"randomkey"}, {"dump", "k"}, {"restore", "k", "0", "x"}, {"info"},
	{"object", "encoding", "k"}, {"memory", "usage", "k"}, {"dbsize"}, {"lastsave"}, {"pubsub", "channels"},
}

func TestAccessOnlyOpsAdministers(t *testing.T) {
	b := realredis.Start(t, "dev", realredis.Options{})
	ctx := realredis.Ctx(t)
	ops := b.Client(t, redisconf.OpsUser)
	celery := b.Client(t, redisconf.CeleryUser)
	require.NoError(t, celery.Set(ctx, "k", "v", 0).Err())

	refused := 0
	for _, cmd := range adminCommands {
		name := strings.TrimSpace(strings.ToLower(strings.Join(strs(cmd[:min(2, len(cmd))]), " ")))
		dry := func(user string) (string, error) {
			return ops.Do(ctx, append([]any{"acl", "dryrun", user}, cmd...)...).Text()
		}
		got, err := dry(redisconf.CeleryUser)
		require.NoError(t, err, name)
		if assert.NotEqual(t, "OK", got, "the celery user may run %s", name) {
			refused++
		}
		got, err = dry(redisconf.OpsUser)
		require.NoError(t, err, name)
		assert.Equal(t, "OK", got, "the ops user may run %s", name)
	}
	// And for real, where it is harmless: the celery user gets NOPERM.
	for _, cmd := range [][]any{{"monitor"}, {"replicaof", "no", "one"}, {"module", "list"}, {"script", "flush"},
		{"client", "list"}, {"eval", "return 1", "0"}, {"bgsave"}, {"scan", "0"}} {
		err := celery.Do(ctx, cmd...).Err()
		require.Error(t, err, "celery runs %v", cmd)
		assert.Contains(t, err.Error(), "NOPERM", "%v", cmd)
	}
	// The ops user does administer: the data is still there until it flushes it.
	for _, cmd := range [][]any{{"config", "get", "maxmemory"}, {"client", "list"}, {"script", "flush"}, {"keys", "*"}, {"flushdb"}} {
		require.NoError(t, ops.Do(ctx, cmd...).Err(), "ops runs %v", cmd)
	}
	n, err := ops.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "ops flushed the database")

	pm, err := ops.ConfigGet(ctx, "protected-mode").Result()
	require.NoError(t, err)
	assert.Equal(t, "yes", pm["protected-mode"])
	def, err := ops.Do(ctx, "acl", "getuser", "default").Result()
	require.NoError(t, err)
	flags := aclField(def, "flags")
	assert.Contains(t, flags, "off", "the default user is off")
	assert.NotContains(t, flags, "nopass", "the default user has no empty password")
	t.Logf("FIGURE access: the celery user is refused %d of %d admin commands (ACL DRYRUN), the ops user may run all of them; protected-mode %s; default user flags %v",
		refused, len(adminCommands), pm["protected-mode"], flags)
}

// TestMonitorUserOnlyReads: the monitor user (healthcheck, metrics exporter) may run exactly what
// they need and nothing that writes, reads a value or administers; ACL DRYRUN both ways, then for real.
func TestMonitorUserOnlyReads(t *testing.T) {
	b := realredis.Start(t, "dev", realredis.Options{})
	ctx := realredis.Ctx(t)
	ops := b.Client(t, redisconf.OpsUser)
	require.NoError(t, ops.RPush(ctx, "celery", "task").Err())
	may := [][]any{{"ping"}, {"info"}, {"info", "persistence"}, {"scan", "0", "match", "_kombu.binding.*"},
		{"smembers", "_kombu.binding.celery"}, {"llen", "celery"}, {"hlen", "unacked"}, {"zcard", "unacked_index"},
		{"zrange", "unacked_index", "0", "0", "withscores"}}
	mayNot := [][]any{{"get", "k"}, {"set", "k", "v"}, {"lpop", "celery"}, {"rpush", "celery", "x"}, {"del", "celery"},
		{"lrange", "celery", "0", "-1"}, {"hgetall", "unacked"}, {"publish", "c", "m"}, {"subscribe", "c"}, {"expire", "celery", "1"}}
	for _, cmd := range adminCommands {
		if cmd[0] != "scan" && cmd[0] != "info" { // the two admin-list commands the monitor needs
			mayNot = append(mayNot, cmd)
		}
	}
	var table []string
	allowed, refused := 0, 0
	for _, group := range []struct {
		cmds [][]any
		want bool
	}{{may, true}, {mayNot, false}} {
		for _, cmd := range group.cmds {
			name := strings.ToLower(strings.Join(strs(cmd[:min(2, len(cmd))]), " "))
			got, err := ops.Do(ctx, append([]any{"acl", "dryrun", redisconf.MonitorUser}, cmd...)...).Text()
			require.NoError(t, err, name)
			if group.want {
				if assert.Equal(t, "OK", got, "the monitor user may run %s", name) {
					allowed++
					table = append(table, name+": allowed")
				}
			} else if assert.NotEqual(t, "OK", got, "the monitor user may not run %s", name) {
				refused++
			}
		}
	}
	monitor := b.Client(t, redisconf.MonitorUser)
	n, err := monitor.LLen(ctx, "celery").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	for _, cmd := range [][]any{{"get", "celery"}, {"lpop", "celery"}, {"config", "get", "masterauth"}, {"flushall"}} {
		err := monitor.Do(ctx, cmd...).Err()
		require.Error(t, err, "monitor runs %v", cmd)
		assert.Contains(t, err.Error(), "NOPERM", "%v", cmd)
	}
	t.Logf("FIGURE access: the monitor user may run %d of %d commands it needs (%s) and is refused %d of %d others (values, writes, Pub/Sub, the admin commands above but SCAN and INFO)",
		allowed, len(may), strings.Join(table, ", "), refused, len(mayNot))
}

// TestReplicaAndSentinelUsersOnlyDoTheirJob: in the sentinel topology, replicas authenticate as the
// replica user and the Sentinels as the sentinel user; ACL DRYRUN (on the primary, as the admin) shows
// what each may run and that neither reads or writes data or administers beyond its job.
func TestReplicaAndSentinelUsersOnlyDoTheirJob(t *testing.T) {
	top := realredis.StartSentinel(t, "dev", `{"mode":"sentinel"}`)
	ops := top.NodeClient(t, top.Nodes[0])
	ctx := realredis.Ctx(t)
	data := [][]any{{"get", "k"}, {"set", "k", "v"}, {"lpop", "celery"}, {"rpush", "celery", "x"}, {"keys", "*"}, {"scan", "0"},
		{"flushall"}, {"config", "set", "appendonly", "no"}, {"config", "get", "masterauth"}, {"acl", "list"}, {"debug", "sleep", "0"},
		{"shutdown", "nosave"}, {"module", "load", "/tmp/x.so"}, {"eval", "return 1", "0"}, {"monitor"}, {"bgsave"}, {"dump", "k"}}
	for _, job := range []struct {
		user     string
		may, not [][]any
	}{
		{redisconf.ReplicaUser, [][]any{{"psync", "?", "-1"}, {"replconf", "listening-port", "6379"}, {"ping"}},
			append([][]any{{"replicaof", "10.0.0.1", "6379"}, {"info"}, {"publish", "__sentinel__:hello", "x"}}, data...)},
		{redisconf.SentinelUser, [][]any{{"ping"}, {"info"}, {"role"}, {"replicaof", "10.0.0.1", "6379"}, {"slaveof", "no", "one"},
			{"config", "rewrite"}, {"client", "kill", "id", "1"}, {"client", "setname", "sentinel"}, {"multi"}, {"exec"},
			{"publish", "__sentinel__:hello", "x"}, {"subscribe", "__sentinel__:hello"}, {"script", "kill"}},
			append([][]any{{"psync", "?", "-1"}, {"publish", "celery", "x"}, {"subscribe", "celery"}}, data...)},
	} {
		var allowed, refused []string
		for _, group := range []struct {
			cmds [][]any
			want bool
		}{{job.may, true}, {job.not, false}} {
			for _, cmd := range group.cmds {
				name := strings.ToLower(strings.Join(strs(cmd[:min(2, len(cmd))]), " "))
				got, err := ops.Do(ctx, append([]any{"acl", "dryrun", job.user}, cmd...)...).Text()
				require.NoError(t, err, "%s %s", job.user, name)
				if group.want {
					if assert.Equal(t, "OK", got, "the %s user may run %s", job.user, name) {
						allowed = append(allowed, name)
					}
				} else if assert.NotEqual(t, "OK", got, "the %s user may not run %s", job.user, name) {
					refused = append(refused, name)
				}
			}
		}
		t.Logf("FIGURE access: the %s user may run %d of %d (%s); refused %d of %d (%s)", job.user, len(allowed), len(job.may),
			strings.Join(allowed, ", "), len(refused), len(job.not), strings.Join(refused, ", "))
	}
}

func strs(a []any) []string {
	out := make([]string, len(a))
	for i, v := range a {
		out[i] = v.(string)
	}
	return out
}

// aclField returns a field of an ACL GETUSER reply (RESP3 map or RESP2 flat list) as strings.
func aclField(reply any, field string) []string {
	var v any
	switch r := reply.(type) {
	case map[any]any:
		v = r[field]
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			if r[i] == field {
				v = r[i+1]
			}
		}
	}
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, e.(string))
		}
	}
	return out
}

func TestDeclaredPorts(t *testing.T) {
	dev, err := declared.Run("dev", declared.Options{})
	require.NoError(t, err)
	prod, err := declared.Run("prod", declared.Options{})
	require.NoError(t, err)
	var published []string
	for _, r := range []*declared.Result{dev, prod} {
		for _, c := range r.ByType(declared.ContainerType) {
			ports := c.Inputs["ports"]
			if !ports.HasValue() {
				continue
			}
			for _, p := range ports.ArrayValue() {
				o := p.ObjectValue()
				published = append(published, r.Stack+"/"+c.Name+" "+o["ip"].StringValue())
				assert.Equal(t, "dev", r.Stack, "prod publishes no host port: %s", c.Name)
				assert.Equal(t, "127.0.0.1", o["ip"].StringValue(), "dev publishes on loopback only")
				assert.Equal(t, "broker-redis", c.Name, "only Redis is published")
			}
		}
	}
	assert.Len(t, published, 1)
	t.Logf("FIGURE ports: published host ports across dev and prod: %v", published)
}
