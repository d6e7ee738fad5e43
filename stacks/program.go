package stacks

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components"
)

// Build contexts, relative to the project root (where Pulumi.yaml is).
const (
	RedisBuildContext = "deployment/docker/redis"
	// WorkerBuildContext holds the reference worker (docker/email-worker) and the emailclient_broker
	// package it imports (python/emailclient-broker); deployment/.dockerignore narrows it to those.
	WorkerBuildContext = "deployment"
	WorkerDockerfile   = "deployment/docker/email-worker/Dockerfile"
	OpsImageDir        = "deployment/docker/ops"
)

// Deployment is what Deploy built.
type Deployment struct {
	Settings Settings
	Broker   *components.RedisBroker
	// EmailService is nil when emailService.enabled is false.
	EmailService *components.EmailService
	// Ops is nil when neither backups nor metrics are enabled.
	Ops *components.OpsServices
}

// Program is the Pulumi program of every stack: Deploy, then export the outputs.
func Program(ctx *pulumi.Context) error {
	d, err := Deploy(ctx)
	if err != nil {
		return err
	}
	for k, v := range Outputs(d) {
		ctx.Export(k, v)
	}
	return nil
}

// Outputs are the stack outputs of a deployment, by name. Users' producers read them
// (emailclient_broker.celery_settings_from_outputs), as do `redis-ops --stack` and the tests.
func Outputs(d *Deployment) map[string]pulumi.Input {
	b := d.Broker
	out := map[string]pulumi.Input{
		"redisHost":           b.Host,
		"redisPort":           b.Port,
		"redisHostPort":       pulumi.Int(d.Settings.Container.HostPort),
		"network":             b.Network,
		"redisContainer":      b.ContainerName,
		"redisImage":          b.Image,
		"celeryBrokerUrl":     b.BrokerURL,
		"celeryResultBackend": b.ResultBackendURL,
		// The plain part of the email-service's env contract (no URL, no password): what a producer
		// outside Docker needs besides the URLs to configure Celery as the email-service is.
		"celeryEnv":   pulumi.ToStringMap(d.Settings.Celery.CeleryEnv()),
		"opsPassword": b.OpsPassword,
	}
	if c := d.Settings.Container; c.HostPort != 0 {
		// Where the ops tools reach Redis from this host (redis-ops --stack).
		out["redisHostAddress"] = pulumi.String(net.JoinHostPort(c.HostIP, strconv.Itoa(c.HostPort)))
	}
	if b.Topology.Sentinel() {
		out["sentinelPassword"] = b.SentinelPassword
		out["sentinelMasterName"] = pulumi.String(b.Topology.MasterName)
	}
	if b.Topology.TLSOn(len(b.HostNames) > 0) {
		// The CA that Celery clients outside the stack trust for the TLS ports (a certificate: public).
		out["redisTlsCa"] = pulumi.Unsecret(b.TLSCA)
	}
	if d.EmailService != nil {
		out["emailServiceContainer"] = d.EmailService.ContainerName
	}
	if d.Ops != nil {
		out["metricsUrl"] = d.Ops.MetricsURL
	}
	if b := d.Settings.Operations.Backup; d.Ops != nil && b.Enabled && b.Remote.Enabled {
		// Where the backups are kept off the host (redis-ops list|verify|restore --stack --remote).
		r := b.Remote
		out["backupRemote"] = pulumi.StringMap{"endpoint": pulumi.String(r.Endpoint), "bucket": pulumi.String(r.Bucket),
			"prefix": pulumi.String(r.Prefix), "region": pulumi.String(r.Region)}
		out["backupRemoteCredentials"] = pulumi.ToSecret(pulumi.StringMap{"accessKey": secretOrNil(d.Settings.BackupRemoteAccessKey),
			"secretKey": secretOrNil(d.Settings.BackupRemoteSecretKey)})
	}
	return out
}

// PrimaryOf finds the current primary of a deployed Sentinel topology: LivePrimary. Tests of the
// declared resources replace it, since a program run with mocks must not reach a Docker engine.
var PrimaryOf = LivePrimary

// hostTargets declares one docker provider per host of a multi-host stack (none on a single host,
// which uses the default provider and docker:host).
func hostTargets(ctx *pulumi.Context, s Settings) ([]components.HostTarget, error) {
	var out []components.HostTarget
	for _, h := range s.Hosts {
		args := &docker.ProviderArgs{Host: pulumi.String(h.Docker), SshOpts: pulumi.ToStringArray(h.SSHOpts)}
		if r := s.Registry; r.Enabled() && r.Username != "" {
			args.RegistryAuth = docker.ProviderRegistryAuthArray{&docker.ProviderRegistryAuthArgs{Address: pulumi.String(r.Server),
				Username: pulumi.String(r.Username), Password: secretOrNil(s.RegistryPassword).ToStringOutput().ToStringPtrOutput()}}
		}
		if m, ok := s.HostsTLS[h.Name]; ok {
			args.CaMaterial = pulumi.ToSecret(pulumi.String(m.CA)).(pulumi.StringOutput)
			args.CertMaterial = pulumi.ToSecret(pulumi.String(m.Cert)).(pulumi.StringOutput)
			args.KeyMaterial = pulumi.ToSecret(pulumi.String(m.Key)).(pulumi.StringOutput)
		}
		p, err := docker.NewProvider(ctx, "docker-"+h.Name, args)
		if err != nil {
			return nil, err
		}
		out = append(out, components.HostTarget{Host: h, Provider: p})
	}
	return out, nil
}

// Deploy loads and validates the stack's settings (before any resource is registered), then builds
// the RedisBroker and, unless disabled, the email-service.
func Deploy(ctx *pulumi.Context) (*Deployment, error) {
	s, err := Load(ctx.Stack(), ContextSource{Ctx: ctx})
	if err != nil {
		return nil, fmt.Errorf("stack %q settings: %w", ctx.Stack(), err)
	}
	root, err := buildRoot(ctx)
	if err != nil {
		return nil, err
	}
	primary := ""
	if s.Topology.Sentinel() {
		var err error
		if primary, err = PrimaryOf(s); err != nil {
			primary = components.NodeAlias(0)
			_ = ctx.Log.Warn(fmt.Sprintf("%v; the data nodes are replaced one at a time in the initial order (%s last)", err, primary), nil)
		}
	}
	hosts, err := hostTargets(ctx, s)
	if err != nil {
		return nil, err
	}
	broker, err := components.NewRedisBroker(ctx, "broker", &components.RedisBrokerArgs{
		Hosts:          hosts,
		Registry:       &components.RegistryAccess{Registry: s.Registry, Password: secretOrNil(s.RegistryPassword)},
		Config:         s.Redis,
		Container:      s.Container,
		Database:       s.Celery.Database,
		BuildContext:   filepath.Join(root, RedisBuildContext),
		CeleryPassword: secretOrNil(s.Password),
		OpsPassword:    secretOrNil(s.OpsPassword),
		Topology:       s.Topology,
		Rotation:       s.PasswordRotation,
		Protect:        s.Protect,
		Primary:        primary,
	})
	if err != nil {
		return nil, err
	}
	d := &Deployment{Settings: s, Broker: broker}
	if s.Operations.Enabled() {
		if d.Ops, err = components.NewOpsServices(ctx, "ops", &components.OpsServicesArgs{
			Settings:   s.Operations,
			Broker:     broker,
			Container:  s.Container,
			ImageDir:   filepath.Join(root, OpsImageDir),
			SourceRoot: root,
			Protect:    s.Protect,
			RemoteCredentials: components.RemoteCredentials{AccessKey: secretOrNil(s.BackupRemoteAccessKey),
				SecretKey: secretOrNil(s.BackupRemoteSecretKey)},
		}); err != nil {
			return nil, err
		}
	}
	if !s.EmailService.Enabled {
		return d, nil
	}
	svc, err := components.NewEmailService(ctx, "email-service", &components.EmailServiceArgs{
		Container:    s.EmailService,
		Celery:       s.Celery,
		BuildContext: filepath.Join(root, WorkerBuildContext),
		Dockerfile:   filepath.Join(root, WorkerDockerfile),
		Platform:     s.Container.Platform,
		Broker:       broker,
	})
	if err != nil {
		return nil, err
	}
	d.EmailService = svc
	return d, nil
}

// buildRoot is the project root as a path relative to the working directory, so that build contexts
// in state do not depend on where the repository is checked out (`main: infra/` runs the program in
// infra/, the tests in their package directory).
func buildRoot(ctx *pulumi.Context) (string, error) {
	root := ctx.RootDirectory()
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if root == "" {
		return ".", nil
	}
	rel, err := filepath.Rel(wd, root)
	if err != nil {
		return "", fmt.Errorf("project root %q: %w", root, err)
	}
	return rel, nil
}

func secretOrNil(pw string) pulumi.StringInput {
	if pw == "" {
		return nil
	}
	return pulumi.ToSecret(pulumi.String(pw)).(pulumi.StringOutput)
}
