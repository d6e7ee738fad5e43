// Package redisconf is the single source of truth for the Redis server configuration that the
// RedisBroker deploys: the typed settings, their validation, and the redis.conf rendered from them.
// The container, the healthcheck, the ops tools and the tests all derive from what this package renders.
package redisconf

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Paths inside the Redis container. They are fixed by the image (deployment/docker/redis).
const (
	// DataDir is where Redis keeps dump.rdb and appendonlydir/; the data volume is mounted here.
	DataDir = "/data"
	// RunDir holds the files the deployment uploads at container creation: redis.conf, users.acl and
	// the healthcheck's password file. A small volume is mounted here so that the uploads work with a
	// read-only root filesystem.
	RunDir = "/run/redis"
	// ConfigFile is the rendered configuration, the only argument of the container's command.
	ConfigFile = RunDir + "/redis.conf"
	// ACLFile holds the ACL users with SHA-256 password hashes (no plain-text password).
	ACLFile = RunDir + "/users.acl"
	// OpsPasswordFile holds the ops user's password (backups and operators' tools).
	OpsPasswordFile = RunDir + "/ops.password"
	// MonitorPasswordFile holds the monitor user's password; the healthcheck authenticates with it.
	MonitorPasswordFile = RunDir + "/monitor.password"
)

// Config is the Redis server configuration of one broker. The zero value is not useful: start from
// Defaults and override fields; Validate before rendering.
type Config struct {
	// Port is the TCP port Redis listens on inside the container. Defaults to 6379; 1-65535.
	Port int `json:"port"`
	// MaxMemory is the Redis maxmemory. Defaults to 512mb; accepts Redis memory units
	// (a whole number with an optional b, k, kb, m, mb, g or gb suffix). "0" means no limit and is refused
	// for a broker, because the container's memory limit would then kill Redis instead of evicting.
	MaxMemory string `json:"maxmemory"`
	// MaxMemoryPolicy is the eviction policy. Defaults to volatile-lru: only keys with a TTL (Celery
	// results) are evicted, and writes fail loudly once none are left. allkeys-* and *-random policies
	// can evict Celery's queues and bindings and are refused unless AcknowledgeUnsafeEviction is set.
	MaxMemoryPolicy string `json:"maxmemoryPolicy"`
	// AcknowledgeUnsafeEviction allows an allkeys-* or *-random policy. Defaults to false.
	AcknowledgeUnsafeEviction bool `json:"acknowledgeUnsafeEviction"`
	// MaxMemorySamples is the LRU/LFU/TTL sample size. Defaults to 5; 1-64.
	MaxMemorySamples int `json:"maxmemorySamples"`
	// Save is the RDB snapshot schedule. Defaults to 900 s/1 change, 300 s/10, 60 s/10000; an empty
	// list disables RDB snapshots.
	Save []SavePoint `json:"save"`
	// RDBCompression compresses strings in the RDB with LZF. Defaults to true.
	RDBCompression bool `json:"rdbcompression"`
	// RDBChecksum appends a CRC64 checksum to the RDB. Defaults to true.
	RDBChecksum bool `json:"rdbchecksum"`
	// AppendOnly turns the append-only file on. Defaults to true; false (snapshots only, or nothing
	// when Save is empty) loses queued tasks in a crash and is refused unless AcknowledgeTaskLoss.
	AppendOnly bool `json:"appendonly"`
	// AcknowledgeTaskLoss allows AppendOnly false. Defaults to false.
	AcknowledgeTaskLoss bool `json:"acknowledgeTaskLoss"`
	// AppendFsync is the AOF fsync policy: always, everysec or no. Defaults to everysec.
	AppendFsync string `json:"appendfsync"`
	// AutoAOFRewritePercentage triggers an AOF rewrite when the AOF grew by this percentage since the
	// last rewrite. Defaults to 100; 0 disables automatic rewrites; at most 10000.
	AutoAOFRewritePercentage int `json:"autoAofRewritePercentage"`
	// AutoAOFRewriteMinSize is the smallest AOF that is rewritten automatically. Defaults to 64mb;
	// Redis memory units.
	AutoAOFRewriteMinSize string `json:"autoAofRewriteMinSize"`
	// AOFUseRDBPreamble writes the rewritten AOF base as RDB. Defaults to true.
	AOFUseRDBPreamble bool `json:"aofUseRdbPreamble"`
	// LogLevel is the Redis log level: debug, verbose, notice or warning. Defaults to notice.
	LogLevel string `json:"loglevel"`
}

// SavePoint is one RDB snapshot rule: save after Seconds if at least Changes keys changed.
type SavePoint struct {
	// Seconds is the interval; 1 or more.
	Seconds int `json:"seconds"`
	// Changes is the number of changed keys; 1 or more.
	Changes int `json:"changes"`
}

// Defaults returns the broker configuration of BRIEF §3 with the safe eviction policy of §4.
func Defaults() Config {
	return Config{
		Port:                     6379,
		MaxMemory:                "512mb",
		MaxMemoryPolicy:          "volatile-lru",
		MaxMemorySamples:         5,
		Save:                     []SavePoint{{900, 1}, {300, 10}, {60, 10000}},
		RDBCompression:           true,
		RDBChecksum:              true,
		AppendOnly:               true,
		AppendFsync:              "everysec",
		AutoAOFRewritePercentage: 100,
		AutoAOFRewriteMinSize:    "64mb",
		AOFUseRDBPreamble:        true,
		LogLevel:                 "notice",
	}
}

// Policies lists every maxmemory-policy Redis 7 accepts.
var Policies = []string{
	"volatile-lru", "volatile-lfu", "volatile-ttl", "volatile-random",
	"allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction",
}

// UnsafePolicy reports whether a policy can evict keys that hold Celery's queues and bindings
// (allkeys-*) or evicts at random (*-random), which loses tasks without an error (kombu#1063).
func UnsafePolicy(p string) bool {
	return strings.HasPrefix(p, "allkeys-") || strings.HasSuffix(p, "-random")
}

// FieldError is a validation error for one setting: it names the key, the value and what is accepted.
type FieldError struct {
	Key      string
	Value    any
	Accepted string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s is not accepted; %s", e.Key, quoteValue(e.Value), e.Accepted)
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// Validate checks every field and returns all problems joined; keys are prefixed with prefix
// (e.g. "redis.").
func (c Config) Validate(prefix string) error {
	var errs []error
	add := func(key string, value any, accepted string) {
		errs = append(errs, &FieldError{Key: prefix + key, Value: value, Accepted: accepted})
	}
	if c.Port < 1 || c.Port > 65535 {
		add("port", c.Port, "accepted: a TCP port from 1 to 65535")
	}
	if n, err := ParseMemory(c.MaxMemory); err != nil {
		add("maxmemory", c.MaxMemory, "accepted: "+memoryUnits)
	} else if n == 0 {
		add("maxmemory", c.MaxMemory, "a broker needs a memory limit, or the container limit kills Redis instead of evicting; accepted: "+memoryUnits+" above 0")
	} else if n < 1<<20 {
		add("maxmemory", c.MaxMemory, "accepted: at least 1mb")
	}
	switch {
	case !contains(Policies, c.MaxMemoryPolicy):
		add("maxmemoryPolicy", c.MaxMemoryPolicy, "accepted: "+strings.Join(Policies, ", "))
	case UnsafePolicy(c.MaxMemoryPolicy) && !c.AcknowledgeUnsafeEviction:
		add("maxmemoryPolicy", c.MaxMemoryPolicy, "it can evict Celery's queue and binding keys, losing tasks without any error (kombu#1063); use volatile-lru, volatile-lfu, volatile-ttl or noeviction, or set "+prefix+"acknowledgeUnsafeEviction: true to accept the risk")
	}
	if c.MaxMemorySamples < 1 || c.MaxMemorySamples > 64 {
		add("maxmemorySamples", c.MaxMemorySamples, "accepted: a whole number from 1 to 64")
	}
	for i, p := range c.Save {
		// Redis reads both as 32-bit C ints: a larger value wraps (e.g. to -1, a save every second).
		if p.Seconds < 1 || p.Changes < 1 || p.Seconds > math.MaxInt32 || p.Changes > math.MaxInt32 {
			add(fmt.Sprintf("save[%d]", i), fmt.Sprintf("%d seconds / %d changes", p.Seconds, p.Changes), "accepted: seconds and changes from 1 to 2147483647")
		}
	}
	if !contains([]string{"always", "everysec", "no"}, c.AppendFsync) {
		add("appendfsync", c.AppendFsync, "accepted: always, everysec, no")
	}
	if c.AutoAOFRewritePercentage < 0 || c.AutoAOFRewritePercentage > 10000 {
		add("autoAofRewritePercentage", c.AutoAOFRewritePercentage, "accepted: a whole number from 0 (off) to 10000")
	}
	if _, err := ParseMemory(c.AutoAOFRewriteMinSize); err != nil {
		add("autoAofRewriteMinSize", c.AutoAOFRewriteMinSize, "accepted: "+memoryUnits)
	}
	if !contains([]string{"debug", "verbose", "notice", "warning"}, c.LogLevel) {
		add("loglevel", c.LogLevel, "accepted: debug, verbose, notice, warning")
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

const memoryUnits = "a whole number of bytes with an optional unit b, k, kb, m, mb, g or gb (e.g. 512mb, 1gb)"

var memoryRe = regexp.MustCompile(`^([0-9]{1,13})(b|k|kb|m|mb|g|gb)?$`)

// ParseMemory parses a Redis memory size ("512mb", "1gb", "100000") into bytes, following Redis's
// units: k=1000, kb=1024, m=1000², mb=1024², g=1000³, gb=1024³ (case-insensitive). It accepts at most
// 1 TiB, which is more than any broker here needs and keeps arithmetic far from overflow.
func ParseMemory(s string) (int64, error) {
	m := memoryRe.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a Redis memory size; %s", s, memoryUnits)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	mult := map[string]int64{"": 1, "b": 1, "k": 1000, "kb": 1 << 10, "m": 1000 * 1000, "mb": 1 << 20,
		"g": 1000 * 1000 * 1000, "gb": 1 << 30}[m[2]]
	if n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is larger than 1 TiB", s)
	}
	return n * mult, nil
}
