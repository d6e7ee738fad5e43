package components

import "fmt"

// RedisContainer shapes the Redis image and container of a RedisBroker.
type RedisContainer struct {
	// BaseImage is the image the Redis image is built FROM (build arg BASE_IMAGE). Defaults to
	// redis:7-alpine; any image with redis-server 7, redis-cli, /bin/sh and a "redis" user works.
	BaseImage string `json:"baseImage"`
	// UID and GID are the numeric user the Redis containers (and the operations containers, which read
	// its files) run as; the image gives /data and /run/redis to it. Default to 999 and 1000 (the redis
	// user of redis:7-alpine); any ids above 0 work with any base image.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Platform is the build platform of the images. Defaults to linux/amd64, so that previews on arm64
	// and amd64 machines do not differ; os/arch.
	Platform string `json:"platform"`
	// ImageName is the local tag of the built image. Defaults to emailclient-redis:<profile>.
	ImageName string `json:"imageName"`
	// Name is the container name. Defaults to emailclient-redis.
	Name string `json:"name"`
	// Network is the Docker network shared with the email-service. Defaults to emailclient-net.
	Network string `json:"network"`
	// Volume is the named data volume mounted at /data. Defaults to redis-data.
	Volume string `json:"volume"`
	// DataHostPath, when set, bind-mounts this absolute host path at /data instead of the volume
	// (prod: /srv/emailclient/redis). It must exist and belong to the image's redis user.
	DataHostPath string `json:"dataHostPath"`
	// HostPort publishes Redis on HostIP:HostPort. Defaults to 6379 in dev and 0 (not published) in
	// prod; 0-65535.
	HostPort int `json:"hostPort"`
	// HostIP is the host address HostPort binds to. Defaults to 127.0.0.1; only loopback addresses
	// are accepted.
	HostIP string `json:"hostIp"`
	// Restart is the restart policy: no, on-failure, always or unless-stopped. Defaults to unless-stopped.
	Restart string `json:"restart"`
	// Healthcheck is the container healthcheck schedule.
	Healthcheck Healthcheck `json:"healthcheck"`
	// Log is the container's log rotation.
	Log LogRotation `json:"log"`
	// Memory is the container memory limit (Redis memory units, e.g. 1536mb). Defaults to none in dev
	// and 2gb in prod; when set it must leave headroom of half of maxmemory (at least 64mb) above
	// maxmemory for the fork of BGSAVE and AOF rewrites.
	Memory string `json:"memory"`
	// MemoryReservation is the soft memory limit. Defaults to none in dev and 1gb in prod; at most Memory.
	MemoryReservation string `json:"memoryReservation"`
	// CPUs is the CPU limit, a decimal number of CPUs from 0.1 to 256 with at most two decimals (e.g.
	// "1.5"). Defaults to none in dev and 2 in prod. Declared as the provider reads it back (see
	// DockerCPUs); values it would read back differently (0.01-0.09) are refused.
	CPUs string `json:"cpus"`
	// CPUShares is the relative CPU weight under contention (Docker's closest to a CPU reservation
	// outside Swarm). Defaults to 0 (Docker's 1024) in dev and 512 in prod; 0 or 2-262144.
	CPUShares int `json:"cpuShares"`
	// StopGraceSeconds is how long Docker waits after SIGTERM for Redis to shut down cleanly (the
	// last AOF write and fsync, the final RDB save) before it kills it, on every stop, replace and
	// destroy. Defaults to 0: derived from redis.maxmemory (see StopGrace); 10-3600 when set.
	StopGraceSeconds int `json:"stopGraceSeconds"`
}

// DefaultHealthcheckInterval is the probe interval of Redis, the Sentinels and the email-service
// unless a stack sets one (see Healthcheck for why 3.5s).
const DefaultHealthcheckInterval = "3.5s"

// Healthcheck is the Docker healthcheck schedule. The seeds probed every 30s; Docker before 25 runs
// the first probe one interval after start and `pulumi up` waits for it, so every deploy waited half
// a minute for a Redis that answers within a second. The default, 3.5s, is measured, not guessed: the
// Docker provider checks a waited-for container's health once a second after starting it, so a first
// probe that ends just before the 4th check (3.5s plus the probe's ~0.1s) holds `pulumi up` 4s where
// 4s or 5s hold it 5s or 6s (BENCHMARKS.md section 6). A failure shows within about 10s (3 retries).
type Healthcheck struct {
	// Interval between checks. Defaults to 3.5s; a Go duration of at least 1s.
	Interval string `json:"interval"`
	// Timeout of one check. Defaults to 3s; at least 1s and below Interval.
	Timeout string `json:"timeout"`
	// Retries before unhealthy. Defaults to 3; 1-100.
	Retries int `json:"retries"`
	// StartPeriod during which failures do not count (a large AOF loading reports "starting").
	// Defaults to 30s; 0s or more.
	StartPeriod string `json:"startPeriod"`
	// StartInterval is the interval between checks during StartPeriod, on Docker 25+ (API 1.44) only:
	// older engines drop it and the provider would then read back a change on every preview. Defaults
	// to empty (not declared); set 1s on Docker 25+ for a first probe one second after start.
	StartInterval string `json:"startInterval"`
}

// LogRotation is the json-file log rotation of a container.
type LogRotation struct {
	// MaxSize of one log file. Defaults to 10m (prod 100m); a number with k, m or g.
	MaxSize string `json:"maxSize"`
	// MaxFile is the number of files kept. Defaults to 3 (prod 10); 1-100.
	MaxFile int `json:"maxFile"`
}

// Celery are the Celery settings the email-service receives as environment variables.
type Celery struct {
	// Database is the Redis database for tasks and results. Defaults to 0; 0-15.
	Database int `json:"database"`
	// TaskSerializer is the task serializer. Defaults to json; json, msgpack or yaml (pickle is refused:
	// it runs code from the broker).
	TaskSerializer string `json:"taskSerializer"`
	// ResultSerializer is the result serializer. Defaults to json; same choices.
	ResultSerializer string `json:"resultSerializer"`
	// AcceptContent lists the accepted content types. Defaults to [json]; same choices.
	AcceptContent []string `json:"acceptContent"`
	// ResultExpires is how long results live, in seconds. Defaults to 86400 (24h); 1 or more when the
	// eviction policy is volatile-* (results are then the only evictable keys).
	ResultExpires int `json:"resultExpires"`
	// TaskTimeLimit is the hard time limit in seconds. Defaults to 3600.
	TaskTimeLimit int `json:"taskTimeLimit"`
	// TaskSoftTimeLimit is the soft time limit in seconds. Defaults to 3000; below TaskTimeLimit.
	TaskSoftTimeLimit int `json:"taskSoftTimeLimit"`
	// VisibilityTimeout is how long an unacknowledged task waits before redelivery, in seconds.
	// Defaults to 7200; it must exceed TaskTimeLimit or long tasks run twice.
	VisibilityTimeout int `json:"visibilityTimeout"`
	// WorkerConcurrency is the number of worker processes. Defaults to 4; 1-256.
	WorkerConcurrency int `json:"workerConcurrency"`
	// AcksLate acknowledges a task after it ran, so a worker lost mid-task does not lose it.
	// Defaults to true. A task is never redelivered before VisibilityTimeout: countdowns, ETAs and
	// retry delays must stay below it, or Redis hands the waiting task out again every
	// VisibilityTimeout and it runs twice (the same email sent twice).
	AcksLate bool `json:"acksLate"`
	// RejectOnWorkerLost requeues a task whose worker process died under it (killed, out of
	// memory). Defaults to false: such a task fails with WorkerLostError, since a task that crashes its
	// worker would otherwise be requeued and crash workers forever. Needs acksLate.
	RejectOnWorkerLost bool `json:"rejectOnWorkerLost"`
	// PrefetchMultiplier is how many tasks a worker process reserves. Defaults to 1; 1-100.
	PrefetchMultiplier int `json:"prefetchMultiplier"`
	// LogLevel is the worker's log level: debug, info, warning, error. Defaults to debug in dev, info in prod.
	LogLevel string `json:"logLevel"`
	// SyncEnqueue makes every enqueue (producers and the worker's own publishes) wait until replicas
	// have the task. Defaults to off.
	SyncEnqueue SyncEnqueue `json:"syncEnqueue"`
}

// SyncEnqueue is synchronous enqueue: after each task is pushed to the primary, the publisher sends
// Redis WAIT <Replicas> <TimeoutMilliseconds> on the same connection and returns only when that many
// replicas acknowledged the write; fewer in time raise emailclient_broker.EnqueueNotReplicatedError,
// so the producer knows the task is not safe from a failover (it may still run, or be lost). Replication
// is otherwise asynchronous: a primary cut off from its replicas acknowledges tasks that a failover then
// discards (RELIABILITY.md, partitions). The cost is one replication round trip per enqueue.
type SyncEnqueue struct {
	// Enabled turns synchronous enqueue on (CELERY_SYNC_ENQUEUE_REPLICAS and
	// CELERY_SYNC_ENQUEUE_TIMEOUT_MS on the email-service, which emailclient_broker.celery_settings
	// reads). Defaults to false. Needs topology.mode sentinel: a standalone broker has no replica to wait for.
	Enabled bool `json:"enabled"`
	// Replicas is how many replicas must acknowledge each task. Defaults to 1; 1 to topology.replicas.
	Replicas int `json:"replicas"`
	// TimeoutMilliseconds is how long an enqueue waits for them before it raises. Defaults to 1000;
	// 1-60000 (WAIT's 0, wait forever, is refused: a producer would hang for as long as a fault lasts).
	TimeoutMilliseconds int `json:"timeoutMilliseconds"`
}

// DefaultSyncEnqueue is off, with 1 replica and 1000 ms for when it is switched on.
func DefaultSyncEnqueue() SyncEnqueue { return SyncEnqueue{Replicas: 1, TimeoutMilliseconds: 1000} }

// EmailServiceContainer shapes the email-service container.
type EmailServiceContainer struct {
	// Enabled deploys the email-service. Defaults to true.
	Enabled bool `json:"enabled"`
	// Image is the email-service image. Defaults to "" in dev, which builds the reference worker from
	// deployment/docker/email-worker; required in prod.
	Image string `json:"image"`
	// BaseImage is the base of the reference worker build (build arg BASE_IMAGE). Defaults to python:3.12-slim.
	BaseImage string `json:"baseImage"`
	// Name is the container name. Defaults to emailclient-<stack>-email-service. The reference worker
	// is built as emailclient-email-worker:<name>.
	Name string `json:"name"`
	// Log is the container's log rotation; defaults as for Redis.
	Log LogRotation `json:"log"`
	// StopGraceSeconds is how long a running task gets to finish (Celery's warm shutdown on SIGTERM)
	// when the container is stopped, replaced or destroyed, before Docker kills the worker; a killed
	// task is redelivered only after celery.visibilityTimeout. Defaults to 60; 1-3600.
	StopGraceSeconds int `json:"stopGraceSeconds"`
	// Memory is the container memory limit (no swap), e.g. 1gb. Defaults to 1gb; empty for none.
	Memory string `json:"memory"`
	// MaxProcesses caps the processes and threads of the worker's user (the nproc ulimit: the
	// provider has no pids limit), so a fork bomb or a leak stays contained; it does not bind an image
	// that runs as root. Defaults to 256; 0 for none, else 16-32768.
	MaxProcesses int `json:"maxProcesses"`
	// ReadOnlyRoot runs the worker with a read-only root filesystem and a small writable /tmp.
	// Defaults to true; set false for an image that writes elsewhere.
	ReadOnlyRoot bool `json:"readOnlyRoot"`
	// Healthcheck is how Docker probes the worker; `pulumi up` waits until the worker is healthy.
	Healthcheck WorkerHealthcheck `json:"healthcheck"`
	// StallExitSeconds is the reference worker's answer to being unhealthy: when it has taken nothing
	// from Redis for this long (its own heartbeat tasks included) while not every process is busy, it
	// stops itself and the restart policy starts a fresh worker, with no person involved (Docker never
	// restarts a container for being unhealthy). Defaults to 120; 0 leaves a stalled worker running,
	// unhealthy, for an outside watcher to act on; else 15-86400. Passed as
	// EMAILWORKER_STALL_EXIT_SECONDS; other images decide this themselves.
	StallExitSeconds int `json:"stallExitSeconds"`
	// WaitForRedis creates the worker only once Redis is healthy (every data node in sentinel mode),
	// as compose's depends_on: service_healthy does. false creates it alongside Redis and relies on the
	// worker waiting for the broker itself: the reference worker waits for an authenticated PING and an
	// accepted write before it consumes (emailclient_broker.wait_for_broker). Celery's own start-up
	// retry covers a broker not up yet, but not a Sentinel primary that refuses writes until a replica
	// has synced (NOREPLICAS): such a worker exits once and Docker restarts it. Either way `pulumi up`
	// returns only when Redis and the worker are healthy, and a stop still lets running tasks finish.
	// Defaults to true; false in dev, where it saves a healthcheck wave per deploy (BENCHMARKS.md
	// section 6). Set it false for your own image once its worker calls wait_for_broker.
	WaitForRedis bool `json:"waitForRedis"`
	// Placement is, in a multi-host stack, how many workers run on which host (host name to count,
	// 1-32 each), e.g. {app-1: 2, app-2: 2}. Defaults to one worker on the first host. Each is named
	// <name>-<host>-<n>. Must be empty on a single host.
	Placement map[string]int `json:"placement"`
}

// WorkerHealthcheck is the email-service healthcheck: Docker's schedule and the probe.
type WorkerHealthcheck struct {
	// The schedule. Defaults to every 3.5s (see Healthcheck), timeout 3s, 3 retries, start period 60s.
	Healthcheck
	// Command is the probe in Docker's form: ["CMD", program, args...] or ["CMD-SHELL", "a command"].
	// Defaults to the reference worker's ["CMD", "/usr/local/bin/emailworker-alive"], which reads the
	// heartbeat file the worker writes when it takes its own heartbeat task from Redis: it fails when
	// the worker stops consuming, and starts no Python. ["NONE"] for an image without a probe: Docker
	// then does not probe it and `pulumi up` does not wait for it.
	Command []string `json:"command"`
}

// Waits reports whether `pulumi up` waits for the probe (every command but ["NONE"]).
func (h WorkerHealthcheck) Waits() bool { return !(len(h.Command) == 1 && h.Command[0] == "NONE") }

// Topology is the shape of a RedisBroker.
type Topology struct {
	// Mode is standalone (one Redis, the default) or sentinel (a primary, Replicas replicas and
	// Sentinels Sentinels; Celery follows failovers through the Sentinels).
	Mode string `json:"mode"`
	// Replicas is the number of replicas in sentinel mode. Defaults to 2; 1-5.
	Replicas int `json:"replicas"`
	// Sentinels is the number of Sentinels. Defaults to 3; 3-7 (fewer cannot outvote a partition).
	Sentinels int `json:"sentinels"`
	// Quorum is how many Sentinels must agree the primary is down. Defaults to 2; 1 to Sentinels.
	Quorum int `json:"quorum"`
	// MasterName is the name Celery asks the Sentinels for. Defaults to emailclient.
	MasterName string `json:"masterName"`
	// DownAfterMilliseconds is how long the primary must be unreachable before a failover. Defaults
	// to 5000; 1000-600000.
	DownAfterMilliseconds int `json:"downAfterMilliseconds"`
	// FailoverTimeoutMilliseconds bounds one failover. Defaults to 60000; 10000-3600000.
	FailoverTimeoutMilliseconds int `json:"failoverTimeoutMilliseconds"`
	// MinReplicasToWrite makes the primary refuse writes (loudly) unless this many replicas are in
	// sync; replication is asynchronous, so this bounds what a failover can lose. Defaults to 1;
	// 0 to Replicas.
	MinReplicasToWrite int `json:"minReplicasToWrite"`
	// MinReplicasMaxLag is the replica lag, in seconds, that still counts as in sync: a primary cut off
	// from its replicas acknowledges writes for about this long, and a failover discards them.
	// Defaults to 3 (replicas acknowledge every second; RELIABILITY.md "Partitions" has the trade-off);
	// 1-60.
	MinReplicasMaxLag int `json:"minReplicasMaxLag"`
	// Placement puts the data nodes and Sentinels on the hosts of a multi-host stack (see Place);
	// empty on a single host.
	Placement Placement `json:"placement"`
	// TLS encrypts the Redis traffic that crosses hosts (replication, Sentinel gossip and failover
	// commands, Celery's connections): every data node and Sentinel gets a TLS listener (redis.port+1
	// and 26380), which alone is published on its host address, with a certificate from a CA the
	// stack generates (BrokerCA); the plain ports stay on each host's own network (healthchecks,
	// operations). Defaults to on with hosts; only with hosts (a single host's traffic never leaves
	// its bridge network). false publishes the plain ports instead, for hosts whose network is already
	// encrypted (WireGuard, IPsec).
	TLS *bool `json:"tls"`
}

// DefaultTopology is a standalone broker; its sentinel fields are the defaults used when Mode is
// switched to sentinel.
func DefaultTopology() Topology {
	return Topology{Mode: "standalone", Replicas: 2, Sentinels: 3, Quorum: 2, MasterName: "emailclient",
		DownAfterMilliseconds: 5000, FailoverTimeoutMilliseconds: 60000, MinReplicasToWrite: 1, MinReplicasMaxLag: 3}
}

// Sentinel reports whether the topology is a sentinel one.
func (t Topology) Sentinel() bool { return t.Mode == "sentinel" }

// Operations are the broker's operations containers, both running the redis-ops image: scheduled
// backups and a Prometheus metrics endpoint.
type Operations struct {
	// Build is how the redis-ops image is built: "prebuilt" (the default; Dockerfile: FROM scratch
	// around the static binary that deployment/docker/ops/build.sh stages, which `make up`, deploy.sh
	// and the CI workflow run before every deploy; needs no registry) or "source" (Dockerfile.source: a
	// GoImage stage compiles it; needs a registry to pull GoImage).
	Build string `json:"build"`
	// GoImage is the build stage of source builds. Defaults to golang:1.26-bookworm.
	GoImage string `json:"goImage"`
	// Backup is the scheduled backup.
	Backup BackupSchedule `json:"backup"`
	// Metrics is the Prometheus endpoint.
	Metrics MetricsEndpoint `json:"metrics"`
}

// BackupSchedule is the scheduled-backup container.
type BackupSchedule struct {
	// Enabled runs it. Defaults to false in dev and true in prod.
	Enabled bool `json:"enabled"`
	// Schedule is a 5-field cron expression in UTC. Defaults to "0 2 * * *" (daily at 02:00).
	Schedule string `json:"schedule"`
	// Retention deletes backups older than this Go duration. Defaults to 720h (30 days); at least 1h.
	Retention string `json:"retention"`
	// Volume is the named volume for backups, mounted at /backups. Defaults to redis-backups.
	Volume string `json:"volume"`
	// HostPath, when set, is an absolute host directory used instead of the volume; it must belong
	// to container.uid.
	HostPath string `json:"hostPath"`
	// Remote keeps a copy of every backup off the host, in S3-compatible object storage.
	Remote BackupRemote `json:"remote"`
}

// BackupRemote is an S3-compatible object storage target: each verified backup is uploaded with its
// manifest (the RDB first, the manifest last) as soon as it is taken, the server's MD5 is compared
// with the manifest's, and Retention applies there too. The credentials are not settings: they are
// the stack's secrets backupRemoteAccessKey and backupRemoteSecretKey, handed to the backup container
// in its env (a secret array), never on its command line.
type BackupRemote struct {
	// Enabled uploads the backups. Defaults to false; needs backup.enabled.
	Enabled bool `json:"enabled"`
	// Endpoint is the S3 API, http(s)://host[:port] with nothing after it. Required when enabled.
	Endpoint string `json:"endpoint"`
	// Bucket holds the copies; it must exist. Required when enabled; S3 naming: 3-63 lowercase
	// letters, digits, dots and hyphens, starting and ending with a letter or digit.
	Bucket string `json:"bucket"`
	// Prefix starts every object name (<prefix>/redis-backup-...). Defaults to emailclient-<stack>;
	// names of letters, digits, _ . - separated by single slashes, or empty.
	Prefix string `json:"prefix"`
	// Region is the bucket's region when the server wants one. Defaults to empty (the server's).
	Region string `json:"region"`
}

// MetricsEndpoint is the metrics container (redis-ops metrics on port 9121, network alias
// redis-metrics).
type MetricsEndpoint struct {
	// Enabled runs it. Defaults to false in dev and true in prod.
	Enabled bool `json:"enabled"`
	// HostPort publishes /metrics on HostIP:HostPort. Defaults to 0 (not published; scrape it on
	// the network as redis-metrics:9121); 0-65535.
	HostPort int `json:"hostPort"`
	// HostIP is the host address HostPort binds to. Defaults to 127.0.0.1; loopback only.
	HostIP string `json:"hostIp"`
}

// Enabled reports whether any operations container (backup or metrics) is deployed.
func (o Operations) Enabled() bool { return o.Backup.Enabled || o.Metrics.Enabled }

// DefaultOperations are off (dev); prod switches both on.
func DefaultOperations() Operations {
	return Operations{
		Build:   "prebuilt",
		GoImage: "golang:1.26-bookworm",
		Backup:  BackupSchedule{Schedule: "0 2 * * *", Retention: "720h", Volume: "redis-backups"},
		Metrics: MetricsEndpoint{HostIP: "127.0.0.1"},
	}
}

// User is the numeric user:group the containers run as.
func (c RedisContainer) User() string { return fmt.Sprintf("%d:%d", c.UID, c.GID) }
