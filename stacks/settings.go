// Package stacks holds the typed settings of the dev and prod stacks, their loading from Pulumi
// config, their validation, and the Pulumi program that builds the components from them.
package stacks

import (
	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// Project is the Pulumi project name and the namespace of every config key.
const Project = "emailclient-infra"

// Profiles are the settings profiles; a stack named dev or prod uses its own, any other stack sets
// the "profile" key.
var Profiles = []string{"dev", "prod"}

// Settings are all settings of one stack. Defaults come from Defaults(profile); the stack file
// overrides only what differs, one object per group (redis, container, celery, emailService).
type Settings struct {
	// Profile is dev or prod. Defaults to the stack name when that is dev or prod.
	Profile string `json:"-"`
	// Redis is the Redis server configuration (redis.conf).
	Redis redisconf.Config `json:"redis"`
	// Container is the Redis container, its image, network, storage and limits.
	Container components.RedisContainer `json:"container"`
	// Topology is standalone (default) or sentinel.
	Topology components.Topology `json:"topology"`
	// Operations are the scheduled-backup and metrics containers.
	Operations components.Operations `json:"operations"`
	// PasswordRotation is a counter: changing it (pulumi config set passwordRotation 2) generates new
	// celery and ops passwords; Redis and the email-service are replaced with them, the data volume is
	// kept. Defaults to 0.
	PasswordRotation int `json:"-"`
	// Celery are the Celery settings wired into the email-service.
	Celery components.Celery `json:"celery"`
	// EmailService is the email-service container.
	EmailService components.EmailServiceContainer `json:"emailService"`
	// Password is the celery user's password when configured as a Pulumi secret (key "password");
	// empty means generated. At least 32 characters.
	Password string `json:"-"`
	// OpsPassword is the ops user's password when configured as a Pulumi secret (key "opsPassword");
	// empty means generated. At least 32 characters.
	OpsPassword string `json:"-"`
	// Protect marks what holds the broker's data (the data volumes, the backups volume) protected:
	// `pulumi destroy` and any change that would replace them stop with an error before anything is
	// deleted (key "protect"). Defaults to true in prod, false in dev. To tear a protected stack down:
	// `pulumi config set protect false`, `pulumi up`, then destroy (data volumes are kept anyway).
	Protect bool `json:"-"`
	// DockerHost is the Docker engine the stack deploys to: the docker provider's own "docker:host"
	// key (unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host). Required, so that a stack
	// never lands on whatever DOCKER_HOST or context the shell has; the stack files set it.
	DockerHost string `json:"-"`
	// Hosts spread a sentinel topology over several Docker hosts (key "hosts"): one docker provider
	// per host, the nodes placed by topology.placement, the workers by emailService.placement. Empty
	// (the default): one host, docker:host.
	Hosts []components.Host `json:"-"`
	// HostsTLS is the TLS material of tcp:// hosts by host name (key "hostsTls", a secret object).
	HostsTLS map[string]components.HostTLS `json:"-"`
	// Registry, on a multi-host stack, builds each image once and runs it by digest on every host
	// (key "registry"); its password is the "registryPassword" secret. Defaults to none: each host builds.
	Registry components.Registry `json:"-"`
	// RegistryPassword is the registry password (key "registryPassword", a secret).
	RegistryPassword string `json:"-"`
	// BackupRemoteAccessKey and BackupRemoteSecretKey are the credentials of
	// operations.backup.remote (keys "backupRemoteAccessKey", "backupRemoteSecretKey", secrets),
	// required when it is enabled.
	BackupRemoteAccessKey string `json:"-"`
	BackupRemoteSecretKey string `json:"-"`
}

// HostNames are the names of Hosts, in order.
func (s Settings) HostNames() []string {
	var names []string
	for _, h := range s.Hosts {
		names = append(names, h.Name)
	}
	return names
}

// Defaults returns the settings of a profile (dev or prod) for a stack, or false for an unknown
// profile. Docker names are scoped by the stack (emailclient-<stack>-redis, -net, -redis-data,
// -email-service, -redis-backups; image emailclient-redis:<stack>), so that two stacks share nothing on
// one engine; explicit names in the stack file win (LegacyNames are those of stacks deployed before).
func Defaults(profile, stack string) (Settings, bool) {
	scope := "emailclient-" + stack
	s := Settings{
		Profile: profile,
		Redis:   redisconf.Defaults(),
		Container: components.RedisContainer{
			BaseImage:   "redis:7-alpine",
			Platform:    "linux/amd64",
			UID:         999,
			GID:         1000,
			ImageName:   "emailclient-redis:" + stack,
			Name:        scope + "-redis",
			Network:     scope + "-net",
			Volume:      scope + "-redis-data",
			HostIP:      "127.0.0.1",
			Restart:     "unless-stopped",
			Healthcheck: components.Healthcheck{Interval: components.DefaultHealthcheckInterval, Timeout: "3s", Retries: 3, StartPeriod: "30s"},
			Log:         components.LogRotation{MaxSize: "10m", MaxFile: 3},
		},
		Topology:   components.DefaultTopology(),
		Registry:   components.Registry{Repository: "emailclient"},
		Operations: components.DefaultOperations(),
		Celery: components.Celery{
			Database:           0,
			TaskSerializer:     "json",
			ResultSerializer:   "json",
			AcceptContent:      []string{"json"},
			ResultExpires:      86400,
			TaskTimeLimit:      3600,
			TaskSoftTimeLimit:  3000,
			VisibilityTimeout:  7200,
			WorkerConcurrency:  4,
			AcksLate:           true,
			PrefetchMultiplier: 1,
			LogLevel:           "info",
			SyncEnqueue:        components.DefaultSyncEnqueue(),
		},
		EmailService: components.EmailServiceContainer{
			Enabled:          true,
			BaseImage:        "python:3.12-slim",
			Name:             scope + "-email-service",
			StopGraceSeconds: 60,
			Memory:           "1gb",
			MaxProcesses:     256,
			ReadOnlyRoot:     true,
			Log:              components.LogRotation{MaxSize: "10m", MaxFile: 3},
			Healthcheck: components.WorkerHealthcheck{
				Healthcheck: components.Healthcheck{Interval: components.DefaultHealthcheckInterval, Timeout: "3s", Retries: 3, StartPeriod: "60s"},
				Command:     []string{"CMD", components.WorkerAliveCommand},
			},
			StallExitSeconds: 120,
			WaitForRedis:     true,
		},
	}
	s.Operations.Backup.Volume = scope + "-redis-backups"
	s.Operations.Backup.Remote.Prefix = scope
	switch profile {
	case "dev":
		s.Redis.LogLevel = "debug"
		s.Celery.LogLevel = "debug"
		s.Container.HostPort = 6379
		s.EmailService.WaitForRedis = false
	case "prod":
		s.Redis.MaxMemory = "1gb"
		s.Container.Memory = "2gb"
		s.Container.MemoryReservation = "1gb"
		s.Container.CPUs = "2"
		s.Container.CPUShares = 512
		s.Operations.Backup.Enabled = true
		s.Operations.Metrics.Enabled = true
		s.Container.Log = components.LogRotation{MaxSize: "100m", MaxFile: 10}
		s.EmailService.Log = components.LogRotation{MaxSize: "100m", MaxFile: 10}
		s.Protect = true
	default:
		return Settings{}, false
	}
	return s, true
}

// LegacyNames are the settings that keep the Docker names of a stack deployed before names were
// scoped by stack (2026-12): its containers, network and data volume stay the same objects.
// `make pin-names STACK=<stack>` writes them into the stack file (keys already set are kept).
func LegacyNames(profile string) map[string]string {
	return map[string]string{
		"container.name":           "emailclient-redis",
		"container.network":        "emailclient-net",
		"container.volume":         "redis-data",
		"container.imageName":      "emailclient-redis:" + profile,
		"emailService.name":        "emailclient-email-service",
		"operations.backup.volume": "redis-backups",
	}
}
