package components

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emailclient/emailclient-infra/components/cronspec"
	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// Accepted shapes of free-form values. They also keep newlines, spaces and shell metacharacters out
// of everything that reaches redis.conf, a container's env or a Docker argument.
var (
	dockerNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	imageRefRe   = regexp.MustCompile(`^([a-z0-9.-]+(:[0-9]{1,5})?/)?[a-z0-9]+([._/-]+[a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	hostPathRe   = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
	platformRe   = regexp.MustCompile(`^linux/(amd64|arm64|arm/v7|386|ppc64le|s390x)$`)
	logSizeRe    = regexp.MustCompile(`^[1-9][0-9]{0,5}[kmg]$`)
	cpusRe       = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,2})?$`)
	serializers  = []string{"json", "msgpack", "yaml"}
	restarts     = []string{"no", "on-failure", "always", "unless-stopped"}
	celeryLevels = []string{"debug", "info", "warning", "error"}
)

// validator collects FieldErrors; every key is prefixed with prefix.
type validator struct {
	prefix string
	errs   []error
}

func (v *validator) fail(key string, value any, accepted string) {
	v.errs = append(v.errs, &redisconf.FieldError{Key: v.prefix + key, Value: value, Accepted: accepted})
}

func (v *validator) match(key, value string, re *regexp.Regexp, accepted string) {
	if !re.MatchString(value) {
		v.fail(key, value, accepted)
	}
}

func (v *validator) oneOf(key, value string, list []string) {
	for _, s := range list {
		if s == value {
			return
		}
	}
	v.fail(key, value, "accepted: "+strings.Join(list, ", "))
}

func (v *validator) between(key string, value, lo, hi int) {
	if value < lo || value > hi {
		v.fail(key, value, fmt.Sprintf("accepted: a whole number from %d to %d", lo, hi))
	}
}

func (v *validator) duration(key, value string, min time.Duration) time.Duration {
	d, err := time.ParseDuration(value)
	if err != nil || d < min || d > 24*time.Hour {
		v.fail(key, value, fmt.Sprintf("accepted: a duration such as 30s or 1m, from %s to 24h", min))
		return 0
	}
	return d
}

func (v *validator) log(prefix string, l LogRotation) {
	v.match(prefix+"maxSize", l.MaxSize, logSizeRe, "accepted: a size such as 10m or 100m (a number with k, m or g)")
	v.between(prefix+"maxFile", l.MaxFile, 1, 100)
}

// Validate checks the container settings; keys are prefixed with prefix (e.g. "").
func (c RedisContainer) Validate(prefix string) error {
	v := &validator{prefix: prefix}
	v.match("baseImage", c.BaseImage, imageRefRe, "accepted: an image reference such as redis:7-alpine")
	v.between("uid", c.UID, 1, 2147483647)
	v.between("gid", c.GID, 1, 2147483647)
	v.match("platform", c.Platform, platformRe, "accepted: os/arch such as linux/amd64 or linux/arm64")
	v.match("imageName", c.ImageName, imageRefRe, "accepted: an image reference such as emailclient-redis:dev")
	v.match("name", c.Name, dockerNameRe, "accepted: letters, digits, _ . - (128 at most), starting with a letter or digit")
	v.match("network", c.Network, dockerNameRe, "accepted: letters, digits, _ . - (128 at most), starting with a letter or digit")
	v.match("volume", c.Volume, dockerNameRe, "accepted: letters, digits, _ . - (128 at most), starting with a letter or digit")
	if c.DataHostPath != "" && (!hostPathRe.MatchString(c.DataHostPath) || path.Clean(c.DataHostPath) != c.DataHostPath || c.DataHostPath == "/") {
		v.fail("dataHostPath", c.DataHostPath, "accepted: empty (use the volume) or a clean absolute path below / of letters, digits and . _ - /")
	}
	v.between("hostPort", c.HostPort, 0, 65535)
	if ip, err := netip.ParseAddr(c.HostIP); err != nil || !ip.IsLoopback() {
		v.fail("hostIp", c.HostIP, "accepted: a loopback address such as 127.0.0.1 (Redis is never published beyond the host)")
	}
	v.oneOf("restart", c.Restart, restarts)
	v.healthcheck("healthcheck.", c.Healthcheck)
	v.log("log.", c.Log)
	v.optionalMemory("memory", c.Memory)
	v.optionalMemory("memoryReservation", c.MemoryReservation)
	if c.CPUs != "" {
		const accepted = "accepted: empty (no limit) or a number of CPUs from 0.1 to 256 with at most two decimals, e.g. 1.5"
		if f, err := strconv.ParseFloat(c.CPUs, 64); !cpusRe.MatchString(c.CPUs) || err != nil || f < 0.1 || f > 256 {
			v.fail("cpus", c.CPUs, accepted)
		} else if _, err := DockerCPUs(c.CPUs); err != nil {
			v.fail("cpus", c.CPUs, err.Error()+"; "+accepted)
		}
	}
	if c.CPUShares != 0 {
		v.between("cpuShares", c.CPUShares, 2, 262144)
	}
	if c.StopGraceSeconds != 0 {
		v.between("stopGraceSeconds", c.StopGraceSeconds, 10, 3600)
	}
	return errors.Join(v.errs...)
}

func (v *validator) optionalMemory(key, value string) int64 {
	if value == "" {
		return 0
	}
	n, err := redisconf.ParseMemory(value)
	if err != nil || n < 4<<20 {
		v.fail(key, value, "accepted: empty (no limit) or a size of at least 4mb such as 1536mb or 2gb")
		return 0
	}
	return n
}

// Validate checks the Celery settings; keys are prefixed with prefix (e.g. "").
func (c Celery) Validate(prefix string) error {
	v := &validator{prefix: prefix}
	v.between("database", c.Database, 0, 15)
	v.oneOf("taskSerializer", c.TaskSerializer, serializers)
	v.oneOf("resultSerializer", c.ResultSerializer, serializers)
	if len(c.AcceptContent) == 0 {
		v.fail("acceptContent", "[]", "accepted: a non-empty list of "+strings.Join(serializers, ", "))
	}
	for i, ct := range c.AcceptContent {
		v.oneOf(fmt.Sprintf("acceptContent[%d]", i), ct, serializers)
	}
	v.between("resultExpires", c.ResultExpires, 0, 365*86400)
	v.between("taskTimeLimit", c.TaskTimeLimit, 1, 7*86400)
	if c.TaskSoftTimeLimit < 1 || c.TaskSoftTimeLimit >= c.TaskTimeLimit {
		v.fail("taskSoftTimeLimit", c.TaskSoftTimeLimit, fmt.Sprintf("accepted: 1 second or more and below celery.taskTimeLimit (%d)", c.TaskTimeLimit))
	}
	if c.VisibilityTimeout <= c.TaskTimeLimit || c.VisibilityTimeout > 30*86400 {
		v.fail("visibilityTimeout", c.VisibilityTimeout, fmt.Sprintf("accepted: more than celery.taskTimeLimit (%d), or tasks still running are delivered again and run twice; at most 2592000", c.TaskTimeLimit))
	}
	if c.RejectOnWorkerLost && !c.AcksLate {
		v.fail("rejectOnWorkerLost", true, "accepted: false, or true together with celery.acksLate: true (only an unacknowledged task can be requeued)")
	}
	v.between("workerConcurrency", c.WorkerConcurrency, 1, 256)
	v.between("prefetchMultiplier", c.PrefetchMultiplier, 1, 100)
	v.oneOf("logLevel", c.LogLevel, celeryLevels)
	v.between("syncEnqueue.replicas", c.SyncEnqueue.Replicas, 1, 5)
	if ms := c.SyncEnqueue.TimeoutMilliseconds; ms < 1 || ms > 60000 {
		v.fail("syncEnqueue.timeoutMilliseconds", ms, "accepted: a whole number of milliseconds from 1 to 60000 "+
			"(how long an enqueue waits for the replicas; 0, wait forever, would hang producers for as long as a fault lasts)")
	}
	return errors.Join(v.errs...)
}

// CheckTopology checks the Celery settings that depend on the broker's topology: synchronous enqueue
// waits for replicas, so it needs the sentinel topology and at most topology.replicas of them. Keys
// are prefixed with prefix (e.g. "celery.").
func (c Celery) CheckTopology(t Topology, prefix string) error {
	v := &validator{prefix: prefix}
	switch s := c.SyncEnqueue; {
	case !s.Enabled:
	case !t.Sentinel():
		v.fail("syncEnqueue.enabled", true, "a standalone broker has no replica, so every enqueue would wait out the timeout and fail; "+
			"accepted: false, or true with topology.mode sentinel")
	case s.Replicas > t.Replicas:
		v.fail("syncEnqueue.replicas", s.Replicas, fmt.Sprintf("accepted: 1 to topology.replicas (%d); more than there are would make every enqueue fail", t.Replicas))
	}
	return errors.Join(v.errs...)
}

// pinnedImageRe matches an image reference that names its content: name@sha256:<digest>, or a local
// image ID.
var pinnedImageRe = regexp.MustCompile(`(^|@)sha256:[a-f0-9]{64}$`)

// PinnedImage reports whether ref names an image by its content (a digest reference or an image ID),
// so that every host runs the same bytes and a new release is a change of the setting.
func PinnedImage(ref string) bool {
	return imageRefRe.MatchString(ref) && pinnedImageRe.MatchString(ref)
}

// Validate checks the email-service container settings; keys are prefixed with prefix.
func (e EmailServiceContainer) Validate(prefix string) error {
	v := &validator{prefix: prefix}
	if !e.Enabled {
		return nil
	}
	if e.Image != "" {
		v.match("image", e.Image, imageRefRe, "accepted: an image reference such as ghcr.io/acme/email-service:1.4.2")
	}
	v.match("baseImage", e.BaseImage, imageRefRe, "accepted: an image reference such as python:3.12-slim")
	v.match("name", e.Name, dockerNameRe, "accepted: letters, digits, _ . - (128 at most), starting with a letter or digit")
	v.log("log.", e.Log)
	v.between("stopGraceSeconds", e.StopGraceSeconds, 1, 3600)
	v.optionalMemory("memory", e.Memory)
	if e.MaxProcesses != 0 {
		v.between("maxProcesses", e.MaxProcesses, 16, 32768)
	}
	v.workerProbe("healthcheck.command", e.Healthcheck.Command)
	if e.Healthcheck.Waits() {
		v.healthcheck("healthcheck.", e.Healthcheck.Healthcheck)
	}
	if e.StallExitSeconds != 0 {
		v.between("stallExitSeconds", e.StallExitSeconds, 15, 86400)
	}
	return errors.Join(v.errs...)
}

// healthcheck checks a healthcheck schedule; keys start with key (e.g. "healthcheck.").
func (v *validator) healthcheck(key string, h Healthcheck) {
	interval := v.duration(key+"interval", h.Interval, time.Second)
	if timeout := v.duration(key+"timeout", h.Timeout, time.Second); timeout > 0 && interval > 0 && timeout >= interval {
		v.fail(key+"timeout", h.Timeout, "accepted: shorter than "+v.prefix+key+"interval ("+h.Interval+")")
	}
	v.between(key+"retries", h.Retries, 1, 100)
	v.duration(key+"startPeriod", h.StartPeriod, 0)
	if h.StartInterval != "" {
		v.duration(key+"startInterval", h.StartInterval, time.Second)
	}
}

// workerProbe checks a healthcheck command in Docker's form.
func (v *validator) workerProbe(key string, cmd []string) {
	const accepted = `accepted: ["CMD", program, args...], ["CMD-SHELL", "a command"] or ["NONE"] (no probe, no wait)`
	ok := len(cmd) > 0
	if ok {
		switch cmd[0] {
		case "CMD":
			ok = len(cmd) >= 2 && strings.TrimSpace(cmd[1]) != ""
		case "CMD-SHELL":
			ok = len(cmd) == 2 && strings.TrimSpace(cmd[1]) != ""
		case "NONE":
			ok = len(cmd) == 1
		default:
			ok = false
		}
	}
	if !ok {
		v.fail(key, fmt.Sprintf("%q", cmd), accepted)
	}
}

// ValidateMemoryHeadroom checks the container's memory limits against maxmemory: Redis forks for
// BGSAVE and AOF rewrites, and copy-on-write can need up to the dataset again, so the limit must leave
// half of maxmemory (at least 64mb) above it, or the kernel kills Redis in the middle of a save.
// Keys are prefixed with prefix (e.g. "container.").
func ValidateMemoryHeadroom(cfg redisconf.Config, c RedisContainer, prefix string) error {
	maxmemory, err := redisconf.ParseMemory(cfg.MaxMemory)
	limit, lerr := redisconf.ParseMemory(c.Memory)
	if err != nil || lerr != nil || c.Memory == "" {
		return nil // reported by the field validators
	}
	v := &validator{prefix: prefix}
	headroom := max(maxmemory/2, 64<<20)
	if limit < maxmemory+headroom {
		v.fail("memory", c.Memory, fmt.Sprintf("accepted: at least maxmemory (%s) plus headroom for fork and rewrite (%dmb), i.e. %dmb or more",
			cfg.MaxMemory, headroom>>20, (maxmemory+headroom+(1<<20)-1)>>20))
	}
	if reservation, err := redisconf.ParseMemory(c.MemoryReservation); err == nil && c.MemoryReservation != "" && reservation > limit {
		v.fail("memoryReservation", c.MemoryReservation, "accepted: at most "+prefix+"memory ("+c.Memory+")")
	}
	return errors.Join(v.errs...)
}

// megabytes converts a validated Redis memory size to whole MB (rounded up) for Docker; "" is 0.
func megabytes(size string) int {
	n, err := redisconf.ParseMemory(size)
	if err != nil {
		return 0
	}
	return int((n + (1 << 20) - 1) >> 20)
}

// Validate checks the topology; keys are prefixed with prefix (e.g. "topology.").
func (t Topology) Validate(prefix string) error {
	v := &validator{prefix: prefix}
	v.oneOf("mode", t.Mode, []string{"standalone", "sentinel"})
	if !t.Sentinel() {
		return errors.Join(v.errs...)
	}
	v.between("replicas", t.Replicas, 1, 5)
	v.between("sentinels", t.Sentinels, 3, 7)
	if t.Quorum < 1 || t.Quorum > t.Sentinels {
		v.fail("quorum", t.Quorum, fmt.Sprintf("accepted: 1 to topology.sentinels (%d); a majority (%d) is recommended", t.Sentinels, t.Sentinels/2+1))
	}
	v.match("masterName", t.MasterName, dockerNameRe, "accepted: letters, digits, _ . - (128 at most), starting with a letter or digit")
	v.between("downAfterMilliseconds", t.DownAfterMilliseconds, 1000, 600000)
	v.between("failoverTimeoutMilliseconds", t.FailoverTimeoutMilliseconds, 10000, 3600000)
	if t.MinReplicasToWrite < 0 || t.MinReplicasToWrite > t.Replicas {
		v.fail("minReplicasToWrite", t.MinReplicasToWrite, fmt.Sprintf("accepted: 0 to topology.replicas (%d)", t.Replicas))
	}
	v.between("minReplicasMaxLag", t.MinReplicasMaxLag, 1, 60)
	return errors.Join(v.errs...)
}

// Validate checks the operations settings; keys are prefixed with prefix (e.g. "operations.").
func (o Operations) Validate(prefix string) error {
	v := &validator{prefix: prefix}
	v.oneOf("build", o.Build, []string{"source", "prebuilt"})
	v.match("goImage", o.GoImage, imageRefRe, "accepted: an image reference such as golang:1.26-bookworm")
	if b := o.Backup; b.Enabled {
		if _, err := cronspec.Parse(b.Schedule, time.UTC); err != nil || strings.ContainsAny(b.Schedule, "\n\r") {
			v.fail("backup.schedule", b.Schedule, "accepted: a 5-field cron expression in UTC such as \"0 2 * * *\" (minute hour day month weekday 0-6), or @daily, @weekly, @monthly, @hourly")
		}
		if d, err := time.ParseDuration(b.Retention); err != nil || d < time.Hour || d > 10*365*24*time.Hour {
			v.fail("backup.retention", b.Retention, "accepted: a duration from 1h to 87600h, e.g. 720h for 30 days")
		}
		v.match("backup.volume", b.Volume, dockerNameRe, "accepted: letters, digits, _ . - (128 at most), starting with a letter or digit")
		if b.HostPath != "" && (!hostPathRe.MatchString(b.HostPath) || path.Clean(b.HostPath) != b.HostPath || b.HostPath == "/") {
			v.fail("backup.hostPath", b.HostPath, "accepted: empty (use the volume) or a clean absolute path of letters, digits and . _ - /")
		}
		v.remote("backup.remote.", b.Remote)
	} else if o.Backup.Remote.Enabled {
		v.fail("backup.remote.enabled", true, "the remote copies the scheduled backups; accepted: false, or true with operations.backup.enabled true")
	}
	if m := o.Metrics; m.Enabled {
		v.between("metrics.hostPort", m.HostPort, 0, 65535)
		if ip, err := netip.ParseAddr(m.HostIP); err != nil || !ip.IsLoopback() {
			v.fail("metrics.hostIp", m.HostIP, "accepted: a loopback address such as 127.0.0.1")
		}
	}
	return errors.Join(v.errs...)
}

var (
	// s3EndpointRe is http(s)://host[:port], nothing after it.
	s3EndpointRe = regexp.MustCompile(`^https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?/?$`)
	// s3BucketRe is the S3 bucket naming rule (without the IP-address and xn-- exceptions).
	s3BucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	s3PrefixRe = regexp.MustCompile(`^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$`)
	s3RegionRe = regexp.MustCompile(`^([a-z0-9][a-z0-9-]{0,62})?$`)
)

// remote checks an enabled BackupRemote; keys are prefixed with prefix.
func (v *validator) remote(prefix string, r BackupRemote) {
	if !r.Enabled {
		return
	}
	v.match(prefix+"endpoint", r.Endpoint, s3EndpointRe, "accepted: http:// or https:// followed by host[:port] of an S3-compatible API, e.g. https://s3.eu-central-1.amazonaws.com or http://10.0.0.5:8333")
	v.match(prefix+"bucket", r.Bucket, s3BucketRe, "accepted: an existing bucket, 3-63 lowercase letters, digits, . and -, starting and ending with a letter or digit")
	if !s3PrefixRe.MatchString(r.Prefix) || strings.Contains(r.Prefix, "..") {
		v.fail(prefix+"prefix", r.Prefix, "accepted: empty, or names of letters, digits, _ . - separated by single /, no leading or trailing /, no ..")
	}
	v.match(prefix+"region", r.Region, s3RegionRe, "accepted: empty, or a region name such as eu-central-1")
}
