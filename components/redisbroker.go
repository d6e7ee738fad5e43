// Package components holds the Pulumi components of the email service's Celery broker: RedisBroker
// (image, network, volumes, passwords, Redis container) and EmailService (the Celery worker container).
package components

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
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

// HostTarget is a host of a multi-host broker and the docker provider of its engine.
type HostTarget struct {
	Host
	Provider pulumi.ProviderResource
}

// Site is one Docker engine a broker runs on: its docker provider (nil on a single host: the stack's
// default provider), the broker network there, and the address the other hosts reach its published
// ports on ("" on a single host).
type Site struct {
	Provider pulumi.ProviderResource
	Network  pulumi.StringOutput
	Address  string
	image    pulumi.StringOutput // the Redis image built on this engine
}

// Options are the resource options of a resource on this engine: parent, and the site's provider.
func (s Site) Options(parent pulumi.ResourceOption) []pulumi.ResourceOption {
	if s.Provider == nil {
		return []pulumi.ResourceOption{parent}
	}
	return []pulumi.ResourceOption{parent, pulumi.Provider(s.Provider)}
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

// buildSites declares, on every engine of the broker, the broker network, and the Redis image where
// a data node or a Sentinel runs (without a registry each engine builds its own). A single-host
// broker has one site, "", on the stack's default provider, with the resource names it always had.
func buildSites(ctx *pulumi.Context, name string, args *RedisBrokerArgs, parent pulumi.ResourceOption) (map[string]Site, error) {
	targets := args.Hosts
	if len(targets) == 0 {
		targets = []HostTarget{{}}
	}
	c := args.Container
	sites := map[string]Site{}
	for _, h := range targets {
		site := Site{Provider: h.Provider, Address: h.Address}
		sfx := ""
		if h.Name != "" {
			sfx = "-" + h.Name
		}
		network, err := docker.NewNetwork(ctx, name+"-network"+sfx, &docker.NetworkArgs{
			Name:   pulumi.String(c.Network),
			Driver: pulumi.String("bridge"),
		}, append(site.Options(parent), pulumi.DeleteBeforeReplace(true))...)
		if err != nil {
			return nil, err
		}
		site.Network = network.Name
		sites[h.Name] = site
	}
	// The Redis image where a data node or a Sentinel runs.
	var placed []string
	for _, h := range targets {
		if h.Name == "" || slices.Contains(args.Topology.Placement.Data, h.Name) || slices.Contains(args.Topology.Placement.Sentinels, h.Name) {
			placed = append(placed, h.Name)
		}
	}
	images, err := imagesOn(ctx, imageBuild{resource: name + "-image", tag: c.ImageName, build: &docker.DockerBuildArgs{
		Context:    pulumi.String(args.BuildContext),
		Dockerfile: pulumi.String(filepath.Join(args.BuildContext, "Dockerfile")),
		Args: pulumi.StringMap{"BASE_IMAGE": pulumi.String(c.BaseImage),
			"REDIS_UID": pulumi.String(strconv.Itoa(c.UID)), "REDIS_GID": pulumi.String(strconv.Itoa(c.GID))},
		Platform: pulumi.String(c.Platform),
	}}, placed, sites, parent, args.Registry)
	if err != nil {
		return nil, err
	}
	for h, image := range images {
		site := sites[h]
		site.image = image
		sites[h] = site
	}
	return sites, nil
}

// siteOf is the site of data node i ("" on a single host).
func siteOf(args *RedisBrokerArgs, i int) string {
	if len(args.Hosts) == 0 {
		return ""
	}
	return args.Topology.Placement.Data[i]
}

// sentinelSite is the site of Sentinel j (from 1; "" on a single host).
func sentinelSite(args *RedisBrokerArgs, j int) string {
	if len(args.Hosts) == 0 {
		return ""
	}
	return args.Topology.Placement.Sentinels[j-1]
}

// buildSentinel declares the data nodes (node 0 is the initial primary) and the Sentinels.
func (b *RedisBroker) buildSentinel(ctx *pulumi.Context, name string, env *nodeEnv, celeryPw, opsPw, monitorPw pulumi.StringOutput) error {
	args := env.args
	c, t := args.Container, args.Topology
	sentinelPw, err := passwordOrGenerated(ctx, name+"-sentinel-password", nil, args.Rotation, env.parent)
	if err != nil {
		return err
	}
	// The data nodes' own users for replication and for the Sentinels (the admin password stays with
	// the backup container and the operators).
	replicaPw, replicaPrev, err := rotatingPassword(ctx, name+"-replica-password", args.Rotation, env.parent)
	if err != nil {
		return err
	}
	sentinelUserPw, sentinelUserPrev, err := rotatingPassword(ctx, name+"-sentinel-user-password", args.Rotation, env.parent)
	if err != nil {
		return err
	}
	// Nodes find each other by network alias on one host, by host address across hosts, there on
	// their TLS ports with topology.tls.
	primary, primarySite := NodeAlias(0), env.sites[siteOf(args, 0)]
	if primarySite.Address != "" {
		primary = primarySite.Address
	}
	tlsOn := t.TLSOn(len(args.Hosts) > 0)
	dataPort, sentinelPort := args.Config.Port, redisconf.SentinelPort
	tlsSeed := pulumi.String("").ToStringOutput()
	b.TLSCA = tlsSeed
	if tlsOn {
		dataPort, sentinelPort = args.Config.TLSPort(), redisconf.SentinelTLSPort
		// Generated once and never rotated: nodes replaced one at a time by a rotation must keep
		// trusting each other (see BrokerCA for the certificates' lifetime).
		if tlsSeed, err = passwordOrGenerated(ctx, name+"-tls-seed", nil, 0, env.parent); err != nil {
			return err
		}
		b.TLSCA = tlsSeed.ApplyT(func(seed string) (string, error) {
			ca, err := brokerCA(seed, name)
			if err != nil {
				return "", err
			}
			return ca.CertPEM(), nil
		}).(pulumi.StringOutput)
	}
	dataSfx, sentinelSfx := nodeSuffixes(t)
	containers := make([]pulumi.Resource, t.Replicas+1)
	var previous []pulumi.Resource // the node replaced before this one
	for _, i := range replacementOrder(t, args.Primary) {
		site := env.sites[siteOf(args, i)]
		n := redisconf.Node{Announce: NodeAlias(i), MinReplicasToWrite: t.MinReplicasToWrite, MinReplicasMaxLag: t.MinReplicasMaxLag, Replicas: t.Replicas}
		var published docker.ContainerPortArray
		if site.Address != "" {
			n.Announce, n.AnnouncePort = site.Address, dataPort
			published = publish(site.Address, dataPort)
		}
		if tlsOn {
			n.TLSPort = dataPort
		}
		if i > 0 {
			n.ReplicaOf, n.ReplicaOfPort = primary, dataPort
		}
		uploads := pulumi.All(celeryPw, opsPw, monitorPw, replicaPw, sentinelUserPw, replicaPrev, sentinelUserPrev, tlsSeed).ApplyT(func(pws []any) ([]docker.ContainerUpload, error) {
			p := passwords(pws)
			files := RuntimeFiles(args.Config, p)
			files[0] = upload(redisconf.ConfigFile, args.Config.RenderNode(n))
			// Replicas authenticate with the previous rotation's password, which the nodes of both
			// generations accept while a rotation replaces them one at a time (the same before the first).
			files = append(files, upload(redisconf.SecretsFile, redisconf.SecretsConf(p.ReplicaPrevious)))
			tls, err := tlsUploads(pws[7].(string), name, NodeAlias(i), n.Announce)
			return append(files, tls...), err
		}).(docker.ContainerUploadArrayOutput)
		hostPath := ""
		if c.DataHostPath != "" {
			hostPath = nodeHostPath(c.DataHostPath, t, i)
		}
		suffix := dataSfx[i]
		var former resourceNames
		if i == 0 {
			// The initial primary is the standalone broker's successor: the same resources by alias
			// and the same data volume, so switching the mode keeps the queued tasks (and back).
			former = dataNodeResources(name, "")
		}
		container, err := env.node(ctx, node{
			resourceNames: dataNodeResources(name, suffix), former: former,
			container: c.Name + suffix, alias: NodeAlias(i), volume: dataVolumeName(c.Volume, suffix, i), hostPath: hostPath,
			// "node": the entrypoint runs it from a copy in /data that keeps the role the Sentinels gave it.
			command: []string{"node", redisconf.ConfigFile}, uploads: uploads, stopGrace: c.StopGrace(args.Config),
			dependsOn: after(args.Primary, previous), ops: i == 0, site: site, ports: published,
		})
		if err != nil {
			return err
		}
		if i == 0 {
			b.Container, b.ContainerName = container, container.Name
		}
		containers[i], previous = container, []pulumi.Resource{container}
	}
	b.DataNodes = containers
	b.Containers = append([]pulumi.Resource(nil), containers...)
	// The Sentinels depend on the data nodes only: they turn healthy together (quorum), so Pulumi must
	// create them in parallel, not one after another.
	dataNodes := b.DataNodes
	var hosts, endpoints []string
	for j := 1; j <= t.Sentinels; j++ {
		site := env.sites[sentinelSite(args, j)]
		cfg := redisconf.Sentinel{Announce: SentinelAlias(j), MasterName: t.MasterName, Primary: primary, Port: args.Config.Port,
			Quorum: t.Quorum, DownAfterMilliseconds: t.DownAfterMilliseconds, FailoverTimeoutMilliseconds: t.FailoverTimeoutMilliseconds}
		var published docker.ContainerPortArray
		if site.Address != "" {
			cfg.Announce, cfg.AnnouncePort = site.Address, sentinelPort
			published = publish(site.Address, sentinelPort)
		}
		if tlsOn {
			cfg.Port, cfg.TLSPort = dataPort, sentinelPort
		}
		uploads := pulumi.All(sentinelUserPw, sentinelPw, tlsSeed).ApplyT(func(pws []any) ([]docker.ContainerUpload, error) {
			tls, err := tlsUploads(pws[2].(string), name, SentinelAlias(j), cfg.Announce)
			return append([]docker.ContainerUpload{
				upload(redisconf.SentinelConfigFile, cfg.Render(pws[0].(string), pws[1].(string))),
				upload(redisconf.SentinelPasswordFile, pws[1].(string)),
			}, tls...), err
		}).(docker.ContainerUploadArrayOutput)
		suffix := sentinelSfx[j-1]
		container, err := env.node(ctx, node{
			resourceNames: resourceNames{resource: name + suffix, runVolume: name + suffix + "-run", dataVolume: name + suffix + "-data"},
			container:     c.Name + suffix, alias: SentinelAlias(j), volume: c.Volume + suffix,
			command: []string{"sentinel"}, uploads: uploads, dependsOn: dataNodes, stopGrace: sentinelStopGraceSeconds,
			site: site, ports: published,
		})
		if err != nil {
			return err
		}
		b.Containers = append(b.Containers, container)
		hosts = append(hosts, cfg.Announce)
		endpoints = append(endpoints, fmt.Sprintf("%s:%d", cfg.Announce, sentinelPort))
	}
	b.Host = pulumi.String(strings.Join(hosts, ",")).ToStringOutput()
	if !tlsOn {
		env.ops.Sentinels, env.ops.MasterName = endpoints, t.MasterName
	}
	b.BrokerURL = pulumi.ToSecret(celeryPw.ApplyT(func(pw string) string {
		return SentinelURLs(pw, endpoints, args.Database)
	})).(pulumi.StringOutput)
	b.ResultBackendURL = b.BrokerURL
	b.SentinelPassword = sentinelPw
	return nil
}

// brokerCA is the CA of the broker name, derived from its generated TLS seed.
func brokerCA(seed, name string) (*BrokerCA, error) {
	sum := sha256.Sum256([]byte(seed))
	return NewBrokerCA(sum[:], name)
}

// tlsUploads are the TLS files of the node or Sentinel alias of the broker name (its certificate for
// its alias and host address, its key and the CA); none without TLS (seed "").
func tlsUploads(seed, name, alias, address string) ([]docker.ContainerUpload, error) {
	if seed == "" {
		return nil, nil
	}
	ca, err := brokerCA(seed, name)
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(alias, []string{address, alias})
	if err != nil {
		return nil, err
	}
	return []docker.ContainerUpload{
		upload(redisconf.TLSCertFile, cert),
		upload(redisconf.TLSKeyFile, key),
		upload(redisconf.TLSCAFile, ca.CertPEM()),
	}, nil
}

// after is the dependency of a data node on the one replaced before it: one at a time, so a change
// never takes two data nodes down together; none when nothing is deployed yet (primary "").
func after(primary string, previous []pulumi.Resource) []pulumi.Resource {
	if primary == "" {
		return nil
	}
	return previous
}

// replacementOrder is the order in which the data nodes are declared, each depending on the one
// before: the replicas by index, then the current primary (an alias; empty or unknown: redis-0).
func replacementOrder(t Topology, primary string) []int {
	last := 0
	for i := 0; i <= t.Replicas; i++ {
		if NodeAlias(i) == primary {
			last = i
		}
	}
	var order []int
	for i := 0; i <= t.Replicas; i++ {
		if i != last {
			order = append(order, i)
		}
	}
	return append(order, last)
}

// SentinelContainerNames are the Docker names of the Sentinels of a sentinel topology.
func SentinelContainerNames(c RedisContainer, t Topology) []string {
	_, sfx := nodeSuffixes(t)
	names := make([]string, len(sfx))
	for j, s := range sfx {
		names[j] = c.Name + s
	}
	return names
}

// NodeAlias is the network alias of data node i of a sentinel topology (redis-0 is the initial primary).
func NodeAlias(i int) string { return fmt.Sprintf("%s-%d", RedisAlias, i) }

// SentinelAlias is the network alias of Sentinel j (from 1).
func SentinelAlias(j int) string { return fmt.Sprintf("sentinel-%d", j) }

// SentinelURLs is the Celery URL of a sentinel topology: one sentinel:// URL per Sentinel endpoint
// (host:port), joined by ";" (kombu's syntax); the credentials are the celery user's, used for the
// primary it finds.
func SentinelURLs(password string, endpoints []string, db int) string {
	urls := make([]string, len(endpoints))
	for j, e := range endpoints {
		urls[j] = fmt.Sprintf("sentinel://%s:%s@%s/%d", redisconf.CeleryUser, escapeAll(password), e, db)
	}
	return strings.Join(urls, ";")
}

// OpsAccess is how an operations container reaches a data node: its address on the network, its data
// (a volume or a host path, mounted read-only at /data) and its runtime volume (ops.password, mounted
// read-only at /run/redis).
type OpsAccess struct {
	Site         Site // the engine of the data node
	Addr         string
	DataVolume   pulumi.StringOutput // empty when DataHostPath is set
	DataHostPath string
	RunVolume    pulumi.StringOutput
	// Sentinels are the Sentinels' host:port as the operations containers reach them, and MasterName
	// the primary's name there: set in the sentinel topology (without TLS between hosts, whose TLS
	// ports redis-ops does not speak), so that they follow the current primary instead of Addr.
	Sentinels  []string
	MasterName string
}

// nodeEnv is what every container of the broker shares.
type nodeEnv struct {
	args   *RedisBrokerArgs
	sites  map[string]Site
	parent pulumi.ResourceOption
	ops    *OpsAccess // set by the first data node
}

// resourceNames are the Pulumi names of a node's container, run volume and data volume.
type resourceNames struct{ resource, runVolume, dataVolume string }

// dataNodeResources are the resource names of the data node with suffix sfx of broker name.
func dataNodeResources(name, sfx string) resourceNames {
	return resourceNames{resource: name + "-redis" + sfx, runVolume: name + "-run" + sfx, dataVolume: name + "-data" + sfx}
}

// was is the alias option of a resource formerly named former ("": none, no former identity).
func was(former string) pulumi.ResourceOption {
	if former == "" {
		return pulumi.Aliases(nil)
	}
	return pulumi.Aliases([]pulumi.Alias{{Name: pulumi.String(former)}})
}

// node is one container of the broker: a data node or a Sentinel.
type node struct {
	resourceNames
	// former are the resource names of the same node in the other topology (the standalone broker and
	// the initial primary), as aliases; empty for the others.
	former           resourceNames
	container, alias string // container name and network alias
	volume, hostPath string // data volume name, or host path when set
	command          []string
	uploads          docker.ContainerUploadArrayOutput
	ports            docker.ContainerPortArray
	dependsOn        []pulumi.Resource
	stopGrace        int  // seconds from SIGTERM to SIGKILL
	ops              bool // the data node the operations containers use (node 0)
	site             Site // the engine it runs on
}

// node declares one hardened Redis container with its runtime volume (the uploads) and its data
// volume (or host path).
func (e *nodeEnv) node(ctx *pulumi.Context, n node) (*docker.Container, error) {
	c := e.args.Container
	opts := n.site.Options(e.parent)
	run, err := docker.NewVolume(ctx, n.runVolume, &docker.VolumeArgs{Name: pulumi.String(runVolumeName(n.container))},
		append(opts, pulumi.DeleteBeforeReplace(true), was(n.former.runVolume))...)
	if err != nil {
		return nil, err
	}
	first := n.ops
	if first {
		e.ops = &OpsAccess{Addr: fmt.Sprintf("%s:%d", n.alias, e.args.Config.Port), DataHostPath: n.hostPath, RunVolume: run.Name,
			DataVolume: pulumi.String("").ToStringOutput(), Site: n.site}
	}
	files, err := e.filesCarrier(ctx, n, run.Name)
	if err != nil {
		return nil, err
	}
	// Redis only reads the run volume: read-only here, written by the files carrier alone.
	volumes := docker.ContainerVolumeArray{nil, &docker.ContainerVolumeArgs{VolumeName: run.Name,
		ContainerPath: pulumi.String(redisconf.RunDir), ReadOnly: pulumi.Bool(true)}}
	if n.hostPath != "" {
		volumes[0] = &docker.ContainerVolumeArgs{HostPath: pulumi.String(n.hostPath), ContainerPath: pulumi.String(redisconf.DataDir)}
	} else {
		// The data volume outlives the stack: `pulumi destroy` must never take queued tasks with it.
		data, err := docker.NewVolume(ctx, n.dataVolume, &docker.VolumeArgs{Name: pulumi.String(n.volume)},
			append(opts, pulumi.RetainOnDelete(true), pulumi.DeleteBeforeReplace(true), pulumi.Protect(e.args.Protect), was(n.former.dataVolume))...)
		if err != nil {
			return nil, err
		}
		volumes[0] = &docker.ContainerVolumeArgs{VolumeName: data.Name, ContainerPath: pulumi.String(redisconf.DataDir)}
		if first {
			e.ops.DataVolume = data.Name
		}
	}
	return docker.NewContainer(ctx, n.resource, &docker.ContainerArgs{
		Name:    pulumi.String(n.container),
		Image:   n.site.image,
		Command: pulumi.ToStringArray(n.command),
		User:    pulumi.String(c.User()),
		Restart: pulumi.String(c.Restart),
		// Hardening: read-only root, writable /data and /run/redis volumes and a small /tmp, no
		// capabilities (Redis starts as its own user on volumes it owns), no privilege escalation.
		ReadOnly:     pulumi.Bool(true),
		Tmpfs:        pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,size=16m")},
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		Healthcheck:  healthcheckArgs([]string{"CMD", HealthcheckCommand}, c.Healthcheck),
		LogDriver:    pulumi.String("json-file"),
		LogOpts:      logOpts(c.Log),
		Volumes:      volumes,
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{&docker.ContainerNetworksAdvancedArgs{
			Name:    n.site.Network,
			Aliases: pulumi.StringArray{pulumi.String(n.alias)},
		}},
		Ports: n.ports,
		// A stop, replace or destroy sends SIGTERM and waits this long before SIGKILL (without it the
		// provider kills at once and Redis skips its last AOF write and final save).
		StopTimeout:         pulumi.Int(n.stopGrace),
		DestroyGraceSeconds: pulumi.Int(n.stopGrace),
		// The files in the run volume are the carrier's: a new carrier (new files) replaces Redis too.
		Labels:      docker.ContainerLabelArray{&docker.ContainerLabelArgs{Label: pulumi.String(FilesLabel), Value: files.ID()}},
		Wait:        pulumi.Bool(true),
		WaitTimeout: pulumi.Int(waitTimeoutSeconds),
		// Limits (0 = none): memory without swap, so that maxmemory plus fork headroom is the real bound.
		Memory:            pulumi.Int(megabytes(c.Memory)),
		MemorySwap:        pulumi.Int(megabytes(c.Memory)),
		MemoryReservation: pulumi.Int(megabytes(c.MemoryReservation)),
		Cpus:              optionalString(c.dockerCPUs()),
		CpuShares:         pulumi.Int(c.CPUShares),
	}, append(opts,
		pulumi.DependsOn(n.dependsOn),
		was(n.former.resource),
		pulumi.DeleteBeforeReplace(true), // fixed container name
		pulumi.ReplaceOnChanges([]string{"healthcheck"}))...)
}

// filesCarrier declares the container that places a node's runtime files (n.uploads) in its run
// volume: created, never started, with no network. The provider uploads files by copying a tar to
// "/" of the container, which Docker refuses for a read-only root filesystem even when the file
// lands in a volume; the carrier's root is writable, so Redis's can stay read-only. The carrier has no
// process, so nothing runs with that writable root. Uploads are replaced (ForceNew) when a file
// changes, and so is the carrier.
func (e *nodeEnv) filesCarrier(ctx *pulumi.Context, n node, runVolume pulumi.StringOutput) (*docker.Container, error) {
	former := "" // the carrier of the node's former identity, if any
	if n.former.resource != "" {
		former = FilesCarrier(n.former.resource)
	}
	return docker.NewContainer(ctx, FilesCarrier(n.resource), &docker.ContainerArgs{
		Name:        pulumi.String(FilesCarrier(n.container)),
		Image:       n.site.image,
		Command:     pulumi.ToStringArray(n.command),
		User:        pulumi.String(e.args.Container.User()),
		Start:       pulumi.Bool(false),
		MustRun:     pulumi.Bool(false),
		NetworkMode: pulumi.String("none"),
		// Declared although it never logs: the provider reads the engine's defaults back otherwise, and
		// a daemon with default log options would show a replace on every preview.
		LogDriver:    pulumi.String("json-file"),
		LogOpts:      logOpts(e.args.Container.Log),
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		Volumes: docker.ContainerVolumeArray{&docker.ContainerVolumeArgs{VolumeName: runVolume,
			ContainerPath: pulumi.String(redisconf.RunDir)}},
		// The uploads hold passwords or their hashes: the whole array is secret.
		Uploads: pulumi.ToSecret(n.uploads).(docker.ContainerUploadArrayOutput),
	}, append(n.site.Options(e.parent),
		was(former),
		// New files land in the run volume only when their node is next: a node still running reads its
		// password files (healthcheck, ops tools) against the ACL it started with.
		pulumi.DependsOn(n.dependsOn),
		pulumi.DeleteBeforeReplace(true), // fixed container name
		pulumi.AdditionalSecretOutputs([]string{"uploads"}))...)
}

// RuntimeFiles are the files uploaded into /run/redis at container creation: the rendered
// redis.conf, the ACL file (SHA-256 hashes only), the ops user's password file (for the backup
// container, which mounts the volume) and the monitor user's (for the healthcheck). The directory is
// private to the redis user (mode 0700 in the image), so the files are world-readable in it.
func RuntimeFiles(cfg redisconf.Config, p redisconf.Passwords) []docker.ContainerUpload {
	return []docker.ContainerUpload{
		upload(redisconf.ConfigFile, cfg.Render()),
		upload(redisconf.ACLFile, redisconf.ACLFileContent(p)),
		upload(redisconf.OpsPasswordFile, p.Ops),
		upload(redisconf.MonitorPasswordFile, p.Monitor),
	}
}

// passwords are the ACL users' passwords from the resolved values of pulumi.All(celery, ops, monitor
// [, replica, sentinel user]).
func passwords(v []any) redisconf.Passwords {
	p := redisconf.Passwords{Celery: v[0].(string), Ops: v[1].(string), Monitor: v[2].(string)}
	if len(v) >= 7 {
		p.Replica, p.Sentinel, p.ReplicaPrevious, p.SentinelPrevious = v[3].(string), v[4].(string), v[5].(string), v[6].(string)
	}
	return p
}

// upload is one uploaded file, readable by the redis user in its private /run/redis.
func upload(path, content string) docker.ContainerUpload {
	return docker.ContainerUpload{File: path, Content: &content, Permissions: pulumi.StringRef("0444")}
}

// rotatingPassword generates an internal user's password (replica, sentinel) in two slots, so that a
// rotation regenerates one only: it returns the current one (slot rotation%2, generated by this
// rotation) and the previous one (the other slot, generated by the rotation before; the current one
// itself before the first rotation). Slot 0 is the resource named name, as before rotations had slots.
func rotatingPassword(ctx *pulumi.Context, name string, rotation int, parent pulumi.ResourceOption) (current, previous pulumi.StringOutput, err error) {
	slot := func(s int) (pulumi.StringOutput, error) {
		resource := name
		if s == 1 {
			resource += "-1"
		}
		// The last rotation up to this one that generated slot s.
		return passwordOrGenerated(ctx, resource, nil, rotation-(rotation-s+2)%2, parent)
	}
	if current, err = slot(rotation % 2); err != nil || rotation == 0 {
		return current, current, err
	}
	previous, err = slot((rotation + 1) % 2)
	return current, previous, err
}

// passwordOrGenerated returns the given password, or a generated one (regenerated when rotation
// changes), always as a secret.
func passwordOrGenerated(ctx *pulumi.Context, name string, given pulumi.StringInput, rotation int, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	if given != nil {
		return pulumi.ToSecret(given.ToStringOutput()).(pulumi.StringOutput), nil
	}
	pw, err := random.NewRandomPassword(ctx, name, &random.RandomPasswordArgs{
		Length:  pulumi.Int(GeneratedPasswordLength),
		Special: pulumi.Bool(false), // letters and digits: URL-safe and shell-safe
		Keepers: pulumi.StringMap{"rotation": pulumi.String(strconv.Itoa(rotation))},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	return pulumi.ToSecret(pw.Result).(pulumi.StringOutput), nil
}

// CeleryURL is the Celery URL of the celery user: redis://celery:<password>@redis:<port>/<db>, with
// every password character outside A-Z a-z 0-9 - . _ ~ percent-encoded. Go's url.UserPassword leaves
// sub-delimiters such as ; , & = + $ as they are, which Python's URL parsing (kombu) splits on.
func CeleryURL(password string, port, db int) string {
	return "redis://" + redisconf.CeleryUser + ":" + escapeAll(password) + "@" + RedisAlias + ":" + strconv.Itoa(port) + "/" + strconv.Itoa(db)
}

func escapeAll(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func celeryURL(password pulumi.StringOutput, port, db int) pulumi.StringOutput {
	return pulumi.ToSecret(password.ApplyT(func(pw string) string { return CeleryURL(pw, port, db) })).(pulumi.StringOutput)
}

// StopGrace is the seconds Docker gives a Redis data node to shut down cleanly:
// container.stopGraceSeconds when set, else derived from redis.maxmemory: 20 s (Redis's own 10 s
// shutdown-timeout for lagging replicas, and margin) plus the final RDB save of a full dataset at a
// conservative 32 MB/s (512mb: 36 s, 1gb: 52 s).
func (c RedisContainer) StopGrace(cfg redisconf.Config) int {
	if c.StopGraceSeconds != 0 {
		return c.StopGraceSeconds
	}
	n, _ := redisconf.ParseMemory(cfg.MaxMemory)
	return 20 + int((n+32<<20-1)/(32<<20))
}

// healthcheckArgs declares the probe tests (Docker's form, e.g. ["CMD", program]) on schedule h;
// ["NONE"] declares no probe.
func healthcheckArgs(tests []string, h Healthcheck) *docker.ContainerHealthcheckArgs {
	if len(tests) == 1 && tests[0] == "NONE" {
		return &docker.ContainerHealthcheckArgs{Tests: pulumi.ToStringArray(tests)}
	}
	return &docker.ContainerHealthcheckArgs{
		Tests:       pulumi.ToStringArray(tests),
		Interval:    pulumi.String(canonicalDuration(h.Interval)),
		Timeout:     pulumi.String(canonicalDuration(h.Timeout)),
		Retries:     pulumi.Int(h.Retries),
		StartPeriod: pulumi.String(canonicalDuration(h.StartPeriod)),
		// Declared only when set: Docker before 25 drops it (see Healthcheck.StartInterval).
		StartInterval: optionalString(canonicalDuration(h.StartInterval)),
	}
}

// canonicalDuration is a validated Go duration as the provider reads it back from Docker ("60s" and
// "1m" as "1m0s"), so a second preview shows no change; "" stays "".
func canonicalDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	return d.String()
}

func logOpts(l LogRotation) pulumi.StringMap {
	return pulumi.StringMap{"max-size": pulumi.String(l.MaxSize), "max-file": pulumi.String(strconv.Itoa(l.MaxFile))}
}

// ports publishes Redis on the loopback host address in dev; none when HostPort is 0 (prod).
func ports(port int, c RedisContainer) docker.ContainerPortArray {
	if c.HostPort == 0 {
		return nil
	}
	return docker.ContainerPortArray{&docker.ContainerPortArgs{
		Internal: pulumi.Int(port), External: pulumi.Int(c.HostPort), Ip: pulumi.String(c.HostIP), Protocol: pulumi.String("tcp"),
	}}
}

// publish publishes port on the host address addr, the same port number on both sides (a multi-host
// node: what the host announces is what the other hosts dial).
func publish(addr string, port int) docker.ContainerPortArray {
	return docker.ContainerPortArray{&docker.ContainerPortArgs{
		Internal: pulumi.Int(port), External: pulumi.Int(port), Ip: pulumi.String(addr), Protocol: pulumi.String("tcp"),
	}}
}

func optionalString(s string) pulumi.StringPtrInput {
	if s == "" {
		return nil
	}
	return pulumi.String(s)
}
