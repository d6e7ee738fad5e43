package redisconf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Directive is one redis.conf line: a name and its arguments.
type Directive struct {
	Name string
	Args []string
}

// Directives returns the full server configuration, in redis.conf order. The settings of Config come
// first, then the fixed hardening and layout of the image. Call Validate first: Directives assumes
// valid values (all of which are single tokens, so nothing can inject a directive).
func (c Config) Directives() []Directive {
	d := func(name string, args ...string) Directive { return Directive{Name: name, Args: args} }
	save := []string{""} // save "" disables snapshots
	if len(c.Save) > 0 {
		save = save[:0]
		for _, p := range c.Save {
			save = append(save, strconv.Itoa(p.Seconds), strconv.Itoa(p.Changes))
		}
	}
	return []Directive{
		// Network: every interface of the container's network, guarded by ACL users; protected mode stays
		// on so that a configuration without passwords would refuse remote clients.
		d("bind", "*", "-::*"),
		d("port", strconv.Itoa(c.Port)),
		d("protected-mode", "yes"),
		d("tcp-keepalive", "300"),
		d("timeout", "0"),
		// Memory: the broker's keys must never be evicted silently (see MaxMemoryPolicy).
		d("maxmemory", strings.ToLower(c.MaxMemory)),
		d("maxmemory-policy", c.MaxMemoryPolicy),
		d("maxmemory-samples", strconv.Itoa(c.MaxMemorySamples)),
		// Persistence: RDB snapshots plus an AOF fsynced every second; writes are refused when a save
		// fails, which the healthcheck reports.
		d("dir", DataDir),
		d("dbfilename", "dump.rdb"),
		d("save", save...),
		d("stop-writes-on-bgsave-error", "yes"),
		d("rdbcompression", yesNo(c.RDBCompression)),
		d("rdbchecksum", yesNo(c.RDBChecksum)),
		d("appendonly", yesNo(c.AppendOnly)),
		d("appenddirname", "appendonlydir"),
		d("appendfsync", c.AppendFsync),
		d("auto-aof-rewrite-percentage", strconv.Itoa(c.AutoAOFRewritePercentage)),
		d("auto-aof-rewrite-min-size", strings.ToLower(c.AutoAOFRewriteMinSize)),
		d("aof-use-rdb-preamble", yesNo(c.AOFUseRDBPreamble)),
		d("aof-load-truncated", "yes"),
		// Access: ACL users from a file of SHA-256 hashes; no requirepass, no plain-text password.
		d("aclfile", ACLFile),
		// Logs to stdout for the container's log driver.
		d("loglevel", c.LogLevel),
		d("logfile", ""),
		d("daemonize", "no"),
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Render returns the redis.conf text the container runs: a header, then one line per directive.
func (c Config) Render() string { return renderDirectives(c.Directives()) }

func renderDirectives(directives []Directive) string {
	var b strings.Builder
	b.WriteString("# redis.conf rendered by emailclient-infra from the stack settings; do not edit.\n")
	b.WriteString("# Print it with: go run ./deployment/cmd/redis-config --stack <dev|prod>\n")
	for _, line := range renderDirectivesLines(directives) {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// renderDirectivesLines renders each directive as one redis.conf line.
func renderDirectivesLines(directives []Directive) []string {
	lines := make([]string, len(directives))
	for i, d := range directives {
		var b strings.Builder
		b.WriteString(d.Name)
		for _, a := range d.Args {
			b.WriteByte(' ')
			b.WriteString(quoteArg(a))
		}
		lines[i] = b.String()
	}
	return lines
}

// quoteArg quotes an argument for redis.conf when it is empty or holds a space; validated values hold
// no quote, backslash or control character.
func quoteArg(a string) string {
	if a == "" || strings.ContainsAny(a, " \t") {
		return strconv.Quote(a)
	}
	return a
}

// ACL users of the broker.
const (
	// CeleryUser is the application's user: the commands kombu and the Celery result backend use, on
	// every key and channel, and nothing that administers the server (no FLUSHALL, CONFIG, KEYS, DEBUG,
	// SHUTDOWN, INFO, SCRIPT FLUSH).
	CeleryUser = "celery"
	// OpsUser is the operators' user (backups, restore, the ops tools), with every command.
	OpsUser = "ops"
	// ReplicaUser is the user replicas authenticate to their primary as (sentinel topology): PSYNC,
	// REPLCONF and PING only.
	ReplicaUser = "replica"
	// SentinelUser is the user the Sentinels reach the data nodes as (sentinel topology): what
	// Sentinel runs to watch and fail over a primary, and nothing that reads or writes data.
	SentinelUser = "sentinel"
	// MonitorUser is the healthcheck's and the metrics exporter's user: it reads server state and
	// queue lengths, and can change nothing, read no value and reach no admin command.
	MonitorUser = "monitor"
)

// monitorCommands is the allow-list of MonitorUser: what the healthcheck (PING, INFO) and
// `redis-ops metrics` (INFO, the kombu bindings by SCAN and SMEMBERS, queue lengths, and ZRANGE for
// the delivery time of the oldest entry of unacked_index, whose members are delivery tags, not
// messages) run.
var monitorCommands = []string{"ping", "auth", "hello", "info", "scan", "smembers", "llen", "hlen", "zcard", "zrange"}

// replicaCommands and sentinelCommands are the allow-lists of ReplicaUser and SentinelUser (Redis's
// documented minimum for each job).
var (
	replicaCommands  = []string{"auth", "psync", "replconf", "ping"}
	sentinelCommands = []string{"auth", "hello", "ping", "info", "role", "multi", "exec", "slaveof", "replicaof", "config|rewrite",
		"client|setname", "client|kill", "script|kill", "subscribe", "publish"}
)

// celeryCommands is the allow-list of CeleryUser, grouped by data type. Allow-listing commands rather
// than categories keeps out e.g. SCRIPT FLUSH, which @scripting would bring in.
var celeryCommands = []string{
	// connection
	"ping", "auth", "hello", "select", "echo", "quit", "reset", "client|setname", "client|getname", "client|id",
	// keys
	"del", "unlink", "exists", "expire", "pexpire", "expireat", "ttl", "pttl", "persist", "type",
	// strings (results, locks, counters)
	"get", "set", "setex", "psetex", "setnx", "getdel", "getex", "mget", "mset", "incr", "incrby", "decr", "decrby",
	// lists (queues)
	"lpush", "rpush", "lpop", "rpop", "brpop", "blpop", "llen", "lrange", "lrem", "lindex", "ltrim", "rpoplpush", "lmove", "blmove",
	// hashes (unacked messages)
	"hset", "hsetnx", "hget", "hmget", "hmset", "hdel", "hgetall", "hexists", "hlen", "hkeys", "hvals", "hincrby",
	// sets (bindings)
	"sadd", "srem", "smembers", "sismember", "smismember", "scard",
	// sorted sets (unacked index, delayed work)
	"zadd", "zrem", "zrange", "zrangebyscore", "zrevrange", "zrevrangebyscore", "zcard", "zscore", "zcount",
	"zremrangebyscore", "zremrangebyrank", "zincrby", "zpopmin",
	// transactions and redis-py locks
	"multi", "exec", "discard", "watch", "unwatch", "evalsha", "script|load", "script|exists",
	// pub/sub (broadcast, events, result notifications)
	"publish", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
	// synchronous enqueue (celery.syncEnqueue): WAIT for replicas after the LPUSH, on its connection
	"wait",
}

// ACLRules returns the ACL rules of a user, without its password.
func ACLRules(user string) []string {
	switch user {
	case CeleryUser:
		rules := []string{"on", "resetkeys", "~*", "resetchannels", "&*", "-@all"}
		for _, c := range celeryCommands {
			rules = append(rules, "+"+c)
		}
		return rules
	case OpsUser:
		return []string{"on", "~*", "&*", "+@all"}
	case MonitorUser:
		return allow([]string{"on", "resetkeys", "%R~*", "resetchannels", "-@all"}, monitorCommands)
	case ReplicaUser:
		return allow([]string{"on", "resetkeys", "resetchannels", "-@all"}, replicaCommands)
	case SentinelUser:
		return allow([]string{"on", "resetkeys", "resetchannels", "&__sentinel__:*", "-@all"}, sentinelCommands)
	}
	return nil
}

// allow appends +command for each command to rules.
func allow(rules, commands []string) []string {
	for _, c := range commands {
		rules = append(rules, "+"+c)
	}
	return rules
}

// Passwords are the passwords of the ACL users; Replica and Sentinel are both empty (no such users)
// in a standalone broker, both set in a sentinel topology.
type Passwords struct {
	Celery, Ops, Monitor, Replica, Sentinel string
	// ReplicaPrevious and SentinelPrevious are the replica and sentinel users' passwords of the
	// previous rotation ("" before the first): still accepted, so that nodes of both generations
	// authenticate to each other while a rotation replaces them one at a time.
	ReplicaPrevious, SentinelPrevious string
}

// ACLFileContent renders users.acl: the default user switched off (and without the implicit nopass,
// so protected mode never treats the server as passwordless), and the celery, ops and monitor users
// (and the replica and sentinel users when their passwords are set) with the SHA-256 hashes of their
// passwords (the replica and sentinel users also with their previous rotation's).
func ACLFileContent(p Passwords) string {
	users := [][]string{{CeleryUser, p.Celery}, {OpsUser, p.Ops}, {MonitorUser, p.Monitor}}
	if p.Replica != "" {
		users = append(users, []string{ReplicaUser, p.Replica, p.ReplicaPrevious}, []string{SentinelUser, p.Sentinel, p.SentinelPrevious})
	}
	out := "user default off resetpass resetkeys resetchannels -@all\n"
	for _, u := range users {
		out += fmt.Sprintf("user %s %s", u[0], strings.Join(ACLRules(u[0]), " "))
		for i, pw := range u[1:] {
			if pw != "" && (i == 0 || pw != u[1]) {
				out += " #" + PasswordHash(pw)
			}
		}
		out += "\n"
	}
	return out
}

// PasswordHash is the hex SHA-256 of a password, as Redis ACL "#<hash>" rules take it.
func PasswordHash(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hex.EncodeToString(sum[:])
}
