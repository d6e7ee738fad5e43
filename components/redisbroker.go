// Package components holds the Pulumi components of the email service's Celery broker: RedisBroker
// (image, network, volumes, passwords, Redis container) and EmailService (the Celery worker container).
package components

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

const (
	// RedisBrokerType is the type token of RedisBroker.
	RedisBrokerType = "emailclient:index:RedisBroker"
	// RedisAlias is the network alias of the Redis container: clients reach it as redis:<port>.
	RedisAlias = "redis"
	// GeneratedPasswordLength is the length of generated passwords (letters and digits only, so they
	// are URL-safe).
	GeneratedPasswordLength = 40
	// HealthcheckCommand is the image's healthcheck script (deployment/docker/redis/redis-healthcheck.sh).
	HealthcheckCommand = "/usr/local/bin/redis-healthcheck"
	// WorkerAliveCommand is the reference worker's healthcheck
	// (deployment/docker/email-worker/emailworker-alive).
	WorkerAliveCommand = "/usr/local/bin/emailworker-alive"
	// FilesLabel is the label of a Redis container naming (by ID) the files carrier that placed its
	// runtime files in its run volume.
	FilesLabel = "emailclient.files-carrier"
	// waitTimeoutSeconds bounds how long `pulumi up` waits for the Redis container to turn healthy.
	waitTimeoutSeconds = 180
	// sentinelStopGraceSeconds is a Sentinel's shutdown time: it saves its small config file only.
	sentinelStopGraceSeconds = 10
)

// RedisBrokerArgs are the inputs of a RedisBroker. Plain Go values shape the resources; passwords are
// Pulumi inputs because they are secrets.
type RedisBrokerArgs struct {
	// Config is the Redis server configuration. Start from redisconf.Defaults().
	Config redisconf.Config
	// Container shapes the image and the container. Required fields: see RedisContainer.Validate.
	Container RedisContainer
	// Database is the Redis database of the Celery URLs. Defaults to 0; 0-15.
	Database int
	// BuildContext is the directory holding the Redis Dockerfile (deployment/docker/redis), as a path
	// the Docker provider resolves from the program's working directory. Required.
	BuildContext string
	// CeleryPassword is the celery user's password. Optional: a 40-character password is generated
	// (and kept in state, encrypted) when nil.
	CeleryPassword pulumi.StringInput
	// OpsPassword is the ops user's password (ops tools and the healthcheck). Optional, as CeleryPassword.
	OpsPassword pulumi.StringInput
	// Topology is standalone (the default when zero) or sentinel; see Topology.
	Topology Topology
	// Rotation is kept by the generated passwords: a new value generates new ones. Defaults to 0.
	Rotation int
	// Protect marks the data volumes protected (pulumi.Protect): destroy, and any change that would
	// replace them, stop with an error. Defaults to false.
	Protect bool
	// Primary is, in sentinel mode, the alias of the data node the Sentinels name as the primary of
	// the deployed topology (see stacks.LivePrimary), or "" when nothing is deployed yet. Deployed, the
	// data nodes are replaced one at a time, the replicas first and this node last; not deployed yet,
	// they are created together.
	Primary string
	// Hosts are the Docker hosts of a multi-host broker (sentinel mode only), each with the docker
	// provider that reaches its engine; Topology.Placement puts the nodes on them (see Topology.Place).
	// Empty: one host, the stack's default provider.
	Hosts []HostTarget
	// Registry, when enabled, is where a multi-host broker's images are pushed once (built on the
	// first host) and pulled by digest on every host; nil or disabled: each host builds its own.
	Registry *RegistryAccess
}

// RedisBroker is a Redis 7 server deployed as a Celery broker and result backend.
type RedisBroker struct {
	pulumi.ResourceState

	// Host is the name clients on Network use to reach Redis (the network alias); in sentinel mode the
	// Sentinels' aliases, comma-separated.
	Host pulumi.StringOutput `pulumi:"host"`
	// Port is Redis's port inside the network.
	Port pulumi.IntOutput `pulumi:"port"`
	// Network is the Docker network name.
	Network pulumi.StringOutput `pulumi:"network"`
	// ContainerName is the Redis container's name.
	ContainerName pulumi.StringOutput `pulumi:"containerName"`
	// Image is the built image's ID (its repo digest for unpushed images).
	Image pulumi.StringOutput `pulumi:"image"`
	// BrokerURL is the Celery broker URL (secret).
	BrokerURL pulumi.StringOutput `pulumi:"brokerUrl"`
	// ResultBackendURL is the Celery result backend URL (secret).
	ResultBackendURL pulumi.StringOutput `pulumi:"resultBackendUrl"`
	// OpsPassword is the ops user's password (secret), for the ops tools.
	OpsPassword pulumi.StringOutput `pulumi:"opsPassword"`
	// MonitorPassword is the monitor user's password (secret): read-only server state, for the
	// metrics exporter and the healthcheck.
	MonitorPassword pulumi.StringOutput `pulumi:"monitorPassword"`
	// SentinelPassword is the Sentinels' password (secret); empty in standalone mode.
	SentinelPassword pulumi.StringOutput `pulumi:"sentinelPassword"`
	// TLSCA is the CA certificate (PEM) that clients trust across hosts with topology.tls; empty
	// without TLS.
	TLSCA pulumi.StringOutput

	// Topology is the broker's topology (its zero value is standalone).
	Topology Topology
	// Ops is how operations containers reach the (initial primary) data node and its files.
	Ops OpsAccess
	// Container is the (initial primary) Redis container.
	Container *docker.Container
	// Containers are all containers of the broker; depend on them to start after they are healthy.
	Containers []pulumi.Resource
	// DataNodes are the Redis servers that hold the data (Containers without the Sentinels); a client
	// that finds its primary through the Sentinels depends on these and retries discovery while the
	// Sentinels start beside it.
	DataNodes []pulumi.Resource
	// Sites are the engines the broker runs on, by host name ("" on a single host).
	Sites map[string]Site
	// HostNames are the hosts of a multi-host broker in the order given; empty on a single host.
	HostNames []string
	// Registry is the registry the broker's images go through (nil: none).
	Registry *RegistryAccess
}

// Validate checks the args (and defaults a zero Topology to standalone); keys are reported with the
// stack setting names.
func (a *RedisBrokerArgs) Validate() error {
	var errs []error
	if a.BuildContext == "" {
		errs = append(errs, errors.New("BuildContext: required (the directory of deployment/docker/redis)"))
	}
	if a.Database < 0 || a.Database > 15 {
		errs = append(errs, &redisconf.FieldError{Key: "Database", Value: a.Database, Accepted: "accepted: 0 to 15"})
	}
	if a.Topology.Mode == "" {
		a.Topology = DefaultTopology()
	}
	if len(a.Hosts) > 0 {
		hosts := make([]Host, len(a.Hosts))
		for i, h := range a.Hosts {
			hosts[i] = h.Host
			if h.Provider == nil {
				errs = append(errs, fmt.Errorf("Hosts[%d].Provider: required (the docker provider of %s)", i, h.Name))
			}
		}
		errs = append(errs, ValidateHosts(hosts, nil))
		if !a.Topology.Sentinel() {
			errs = append(errs, &redisconf.FieldError{Key: "topology.mode", Value: a.Topology.Mode, Accepted: "with hosts the broker is spread over them; accepted: sentinel"})
		} else {
			var err error
			a.Topology, err = a.Topology.Place(hosts)
			errs = append(errs, err)
		}
	}
	errs = append(errs, a.Topology.CheckTLS(a.Config, len(a.Hosts) > 0))
	return errors.Join(append(errs, ValidateBroker(a.Config, a.Container, a.Topology))...)
}

// ValidateBroker checks everything that shapes a broker: the Redis config ("redis."), the container
// ("container."), the topology ("topology.") and how they fit together.
func ValidateBroker(cfg redisconf.Config, c RedisContainer, t Topology) error {
	var errs []error
	if t.Sentinel() && c.HostPort != 0 {
		errs = append(errs, &redisconf.FieldError{Key: "container.hostPort", Value: c.HostPort,
			Accepted: "with topology.mode sentinel clients reach Redis through the Sentinels on the network; accepted: 0"})
	}
	return errors.Join(append(errs,
		t.Validate("topology."),
		cfg.Validate("redis."),
		c.Validate("container."),
		ValidateMemoryHeadroom(cfg, c, "container."))...)
}

// NewRedisBroker validates args, then registers the broker and its children, all named from name.
func NewRedisBroker(ctx *pulumi.Context, name string, args *RedisBrokerArgs, opts ...pulumi.ResourceOption) (*RedisBroker, error) {
	if args == nil {
		return nil, fmt.Errorf("redisbroker %q: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker %q: %w", name, err)
	}
	b := &RedisBroker{}
	if err := ctx.RegisterComponentResource(RedisBrokerType, name, b, opts...); err != nil {
		return nil, err
	}
	if err := b.build(ctx, name, args); err != nil {
		return nil, fmt.Errorf("redisbroker %q: %w", name, err)
	}
	return b, ctx.RegisterResourceOutputs(b, pulumi.Map{
		"host":             b.Host,
		"port":             b.Port,
		"network":          b.Network,
		"containerName":    b.ContainerName,
		"image":            b.Image,
		"brokerUrl":        b.BrokerURL,
		"resultBackendUrl": b.ResultBackendURL,
		"opsPassword":      b.OpsPassword,
		"monitorPassword":  b.MonitorPassword,
		"sentinelPassword": b.SentinelPassword,
	})
}

func (b *RedisBroker) build(ctx *pulumi.Context, name string, args *RedisBrokerArgs) error {
	c, t := args.Container, args.Topology
	parent := pulumi.Parent(b)
	b.Topology = t
	celeryPw, err := passwordOrGenerated(ctx, name+"-celery-password", args.CeleryPassword, args.Rotation, parent)
	if err != nil {
		return err
	}
	opsPw, err := passwordOrGenerated(ctx, name+"-ops-password", args.OpsPassword, args.Rotation, parent)
	if err != nil {
		return err
	}
	monitorPw, err := passwordOrGenerated(ctx, name+"-monitor-password", nil, args.Rotation, parent)
	if err != nil {
		return err
	}
	b.MonitorPassword = monitorPw
	sites, err := buildSites(ctx, name, args, parent)
	if err != nil {
		return err
	}
	b.Sites, b.Registry = sites, args.Registry
	for _, h := range args.Hosts {
		b.HostNames = append(b.HostNames, h.Name)
	}
	env := &nodeEnv{args: args, sites: sites, parent: parent}
	primarySite := sites[siteOf(args, 0)]
	b.Image = primarySite.image
	b.Network = primarySite.Network
	b.Port = pulumi.Int(args.Config.Port).ToIntOutput()
	b.OpsPassword = opsPw
	if !t.Sentinel() {
		uploads := pulumi.All(celeryPw, opsPw, monitorPw).ApplyT(func(pws []any) []docker.ContainerUpload {
			return RuntimeFiles(args.Config, passwords(pws))
		}).(docker.ContainerUploadArrayOutput)
		container, err := env.node(ctx, node{
			resourceNames: dataNodeResources(name, ""), former: dataNodeResources(name, "-0"),
			container: c.Name, alias: RedisAlias, volume: c.Volume, hostPath: c.DataHostPath,
			command: []string{redisconf.ConfigFile}, uploads: uploads, ports: ports(args.Config.Port, c), site: primarySite,
			stopGrace: c.StopGrace(args.Config), ops: true,
		})
		if err != nil {
			return err
		}
		b.Container, b.Containers = container, []pulumi.Resource{container}
		b.DataNodes = b.Containers
		b.Host = pulumi.String(RedisAlias).ToStringOutput()
		b.ContainerName = container.Name
		b.BrokerURL = celeryURL(celeryPw, args.Config.Port, args.Database)
		b.ResultBackendURL = b.BrokerURL
		b.SentinelPassword = pulumi.ToSecret(pulumi.String("")).(pulumi.StringOutput)
		b.TLSCA = pulumi.String("").ToStringOutput()
		b.Ops = *env.ops
		return nil
	}
	if err := b.buildSentinel(ctx, name, env, celeryPw, opsPw, monitorPw); err != nil {
		return err
	}
	b.Ops = *env.ops
	return nil
}
