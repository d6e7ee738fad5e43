package components

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

const (
	// OpsServicesType is the type token of OpsServices.
	OpsServicesType = "emailclient:index:OpsServices"
	// MetricsAlias is the metrics container's network alias; Prometheus scrapes MetricsAlias:MetricsPort.
	MetricsAlias = "redis-metrics"
	// MetricsPort is the port of /metrics inside the network.
	MetricsPort = 9121
	// BackupsDir is where the backup volume (or host path) is mounted.
	BackupsDir = "/backups"
	// opsBinary is the redis-ops binary in its FROM scratch image.
	opsBinary = "/redis-ops"
	// opsStopGraceSeconds lets a backup being written finish (or clean up its partial file) on a stop.
	opsStopGraceSeconds = 30
)

// OpsServicesArgs are the inputs of OpsServices.
type OpsServicesArgs struct {
	// Settings are the operations settings.
	Settings Operations
	// Broker is the RedisBroker to operate. Required.
	Broker *RedisBroker
	// Container is the broker's container settings: the operations containers run as its uid/gid (the
	// owner of the files they read), with its restart policy, log rotation and platform.
	Container RedisContainer
	// ImageDir is deployment/docker/ops (its Dockerfiles, and rootfs/ for prebuilt builds). Required.
	ImageDir string
	// SourceRoot is the repository root, the build context of source builds. Required for them.
	SourceRoot string
	// Protect marks the backups volume protected, as RedisBrokerArgs.Protect. Defaults to false.
	Protect bool
	// RemoteCredentials are Settings.Backup.Remote's keys (secrets). Required when it is enabled.
	RemoteCredentials RemoteCredentials
}

// RemoteCredentials are the access and secret key of an S3-compatible backup target: secret inputs,
// handed to the backup container in its env (a secret array).
type RemoteCredentials struct {
	AccessKey, SecretKey pulumi.StringInput
}

// OpsServices are the scheduled-backup and metrics containers of a broker, both running redis-ops.
type OpsServices struct {
	pulumi.ResourceState

	// Image is the redis-ops image ID.
	Image pulumi.StringOutput `pulumi:"image"`
	// MetricsURL is the /metrics URL on the network ("" when metrics are off).
	MetricsURL pulumi.StringOutput `pulumi:"metricsUrl"`
}

// NewOpsServices validates args and registers the redis-ops image and the enabled containers.
func NewOpsServices(ctx *pulumi.Context, name string, args *OpsServicesArgs, opts ...pulumi.ResourceOption) (*OpsServices, error) {
	if err := args.validate(); err != nil {
		return nil, fmt.Errorf("opsservices %q: %w", name, err)
	}
	s := &OpsServices{}
	if err := ctx.RegisterComponentResource(OpsServicesType, name, s, opts...); err != nil {
		return nil, err
	}
	if err := s.build(ctx, name, args); err != nil {
		return nil, fmt.Errorf("opsservices %q: %w", name, err)
	}
	return s, ctx.RegisterResourceOutputs(s, pulumi.Map{"image": s.Image, "metricsUrl": s.MetricsURL})
}

func (a *OpsServicesArgs) validate() error {
	if a == nil || a.Broker == nil {
		return errors.New("Broker: required (a RedisBroker)")
	}
	var errs []error
	if a.ImageDir == "" {
		errs = append(errs, errors.New("ImageDir: required (deployment/docker/ops)"))
	}
	if a.Settings.Build == "source" && a.SourceRoot == "" {
		errs = append(errs, errors.New("SourceRoot: required for operations.build source"))
	}
	if b := a.Settings.Backup; b.Enabled && b.Remote.Enabled && (a.RemoteCredentials.AccessKey == nil || a.RemoteCredentials.SecretKey == nil) {
		errs = append(errs, errors.New("RemoteCredentials: required with operations.backup.remote.enabled (backupRemoteAccessKey, backupRemoteSecretKey)"))
	}
	return errors.Join(append(errs, a.Settings.Validate("operations."))...)
}

func (s *OpsServices) build(ctx *pulumi.Context, name string, args *OpsServicesArgs) error {
	c, o, access := args.Container, args.Settings, args.Broker.Ops
	// On the engine of the data node they operate (the initial primary's host across hosts).
	parent := pulumi.Composite(access.Site.Options(pulumi.Parent(s))...)
	image, err := docker.NewImage(ctx, name+"-image", &docker.ImageArgs{
		ImageName: pulumi.String(opsImageName(c)),
		SkipPush:  pulumi.Bool(true),
		Build:     opsBuild(args),
	}, parent)
	if err != nil {
		return err
	}
	s.Image = image.RepoDigest
	s.MetricsURL = pulumi.String("").ToStringOutput()
	// The backup container is the admin's (BGSAVE, its files): the ops password from the run volume.
	// In the sentinel topology both containers follow the Sentinels (the primary for the metrics, an
	// in-sync replica for the backups) and get the Sentinels' password in their env, a secret array.
	var env pulumi.StringArrayInput = pulumi.StringArray{
		pulumi.String("REDIS_ADDR=" + access.Addr),
		pulumi.String("REDIS_USERNAME=" + redisconf.OpsUser),
		pulumi.String("REDIS_PASSWORD_FILE=" + redisconf.OpsPasswordFile),
	}
	if len(access.Sentinels) > 0 {
		env = pulumi.ToSecret(args.Broker.SentinelPassword.ApplyT(func(spw string) []string {
			return append([]string{"REDIS_ADDR=" + access.Addr, "REDIS_USERNAME=" + redisconf.OpsUser,
				"REDIS_PASSWORD_FILE=" + redisconf.OpsPasswordFile}, sentinelEnv(access, spw)...)
		})).(pulumi.StringArrayOutput)
	}
	// The metrics container listens on the network: it gets the read-only monitor user only, in its
	// env (a secret array), and no mount of the run volume, which holds the admin password.
	monitorEnv := pulumi.ToSecret(pulumi.All(args.Broker.MonitorPassword, args.Broker.SentinelPassword).ApplyT(func(pws []any) []string {
		return append([]string{"REDIS_ADDR=" + access.Addr, "REDIS_USERNAME=" + redisconf.MonitorUser, "REDIS_PASSWORD=" + pws[0].(string)},
			sentinelEnv(access, pws[1].(string))...)
	})).(pulumi.StringArrayOutput)
	runMount := &docker.ContainerVolumeArgs{VolumeName: access.RunVolume, ContainerPath: pulumi.String(redisconf.RunDir), ReadOnly: pulumi.Bool(true)}
	var backups *docker.ContainerVolumeArgs
	if o.Backup.Enabled {
		if backups, err = s.backupMount(ctx, name, o.Backup, parent, pulumi.Protect(args.Protect)); err != nil {
			return err
		}
		data := &docker.ContainerVolumeArgs{VolumeName: access.DataVolume, ContainerPath: pulumi.String(redisconf.DataDir), ReadOnly: pulumi.Bool(true)}
		if access.DataHostPath != "" {
			data = &docker.ContainerVolumeArgs{HostPath: pulumi.String(access.DataHostPath), ContainerPath: pulumi.String(redisconf.DataDir), ReadOnly: pulumi.Bool(true)}
		}
		cmd, backupEnv := []string{"schedule", "--cron", o.Backup.Schedule, "--dir", BackupsDir, "--data-dir", redisconf.DataDir, "--retention", o.Backup.Retention}, env
		if r := o.Backup.Remote; r.Enabled {
			cmd, backupEnv = append(cmd, remoteFlags(r)...), remoteEnv(env, args.RemoteCredentials)
		}
		_, err := opsContainer(ctx, name, "backup", args, image, backupEnv, nil, parent, cmd,
			docker.ContainerVolumeArray{data, runMount, backups})
		if err != nil {
			return err
		}
	}
	if o.Metrics.Enabled {
		cmd := []string{"metrics", "--listen", ":" + strconv.Itoa(MetricsPort)}
		var volumes docker.ContainerVolumeArray
		if backups != nil {
			cmd = append(cmd, "--backup-dir", BackupsDir)
			volumes = append(volumes, &docker.ContainerVolumeArgs{VolumeName: backups.VolumeName, HostPath: backups.HostPath,
				ContainerPath: pulumi.String(BackupsDir), ReadOnly: pulumi.Bool(true)})
		}
		var ports docker.ContainerPortArray
		if o.Metrics.HostPort != 0 {
			ports = docker.ContainerPortArray{&docker.ContainerPortArgs{Internal: pulumi.Int(MetricsPort),
				External: pulumi.Int(o.Metrics.HostPort), Ip: pulumi.String(o.Metrics.HostIP), Protocol: pulumi.String("tcp")}}
		}
		if _, err := opsContainer(ctx, name, "metrics", args, image, monitorEnv, ports, parent, cmd, volumes); err != nil {
			return err
		}
		s.MetricsURL = pulumi.Sprintf("http://%s:%d/metrics", MetricsAlias, MetricsPort)
	}
	return nil
}

// opsBuild is the image build: from source with a Go build stage, or FROM scratch around the binary
// staged by build.sh.
func opsBuild(args *OpsServicesArgs) *docker.DockerBuildArgs {
	c, o := args.Container, args.Settings
	buildArgs := pulumi.StringMap{"OPS_UID": pulumi.String(strconv.Itoa(c.UID)), "OPS_GID": pulumi.String(strconv.Itoa(c.GID))}
	if o.Build == "prebuilt" {
		return &docker.DockerBuildArgs{Context: pulumi.String(args.ImageDir), Dockerfile: pulumi.String(filepath.Join(args.ImageDir, "Dockerfile")),
			Args: buildArgs, Platform: pulumi.String(c.Platform)}
	}
	buildArgs["GO_IMAGE"] = pulumi.String(o.GoImage)
	return &docker.DockerBuildArgs{Context: pulumi.String(args.SourceRoot), Dockerfile: pulumi.String(filepath.Join(args.ImageDir, "Dockerfile.source")),
		Args: buildArgs, Platform: pulumi.String(c.Platform)}
}

// backupMount declares the backup volume (kept on destroy, like the data) or uses the host path.
func (s *OpsServices) backupMount(ctx *pulumi.Context, name string, b BackupSchedule, parent, protect pulumi.ResourceOption) (*docker.ContainerVolumeArgs, error) {
	if b.HostPath != "" {
		return &docker.ContainerVolumeArgs{HostPath: pulumi.String(b.HostPath), ContainerPath: pulumi.String(BackupsDir)}, nil
	}
	v, err := docker.NewVolume(ctx, name+"-backups", &docker.VolumeArgs{Name: pulumi.String(b.Volume)},
		parent, pulumi.RetainOnDelete(true), pulumi.DeleteBeforeReplace(true), protect)
	if err != nil {
		return nil, err
	}
	return &docker.ContainerVolumeArgs{VolumeName: v.Name, ContainerPath: pulumi.String(BackupsDir)}, nil
}

// opsContainer declares one hardened redis-ops container (role backup or metrics) on the broker's
// network, started after the broker is healthy. The backup container reads the ops password from the
// broker's run volume; the metrics container's env (secret) holds the monitor password.
func opsContainer(ctx *pulumi.Context, name, role string, args *OpsServicesArgs, image *docker.Image, env pulumi.StringArrayInput,
	ports docker.ContainerPortArray, parent pulumi.ResourceOption, command []string, volumes docker.ContainerVolumeArray) (*docker.Container, error) {
	c := args.Container
	var aliases pulumi.StringArray
	var healthcheck *docker.ContainerHealthcheckArgs
	if role == "metrics" {
		aliases = pulumi.StringArray{pulumi.String(MetricsAlias)}
		healthcheck = healthcheckArgs([]string{"CMD", opsBinary, "healthz", fmt.Sprintf("--url=http://127.0.0.1:%d/healthz", MetricsPort)}, c.Healthcheck)
	}
	return docker.NewContainer(ctx, name+"-"+role, &docker.ContainerArgs{
		Name:         pulumi.String(opsContainerName(c, role)),
		Image:        image.RepoDigest,
		Command:      pulumi.ToStringArray(command),
		User:         pulumi.String(c.User()),
		Envs:         env,
		Restart:      pulumi.String(c.Restart),
		ReadOnly:     pulumi.Bool(true),
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		Healthcheck:  healthcheck,
		LogDriver:    pulumi.String("json-file"),
		LogOpts:      logOpts(c.Log),
		Volumes:      volumes,
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{&docker.ContainerNetworksAdvancedArgs{
			Name: args.Broker.Ops.Site.Network, Aliases: aliases,
		}},
		Ports:               ports,
		StopTimeout:         pulumi.Int(opsStopGraceSeconds),
		DestroyGraceSeconds: pulumi.Int(opsStopGraceSeconds),
	}, parent, pulumi.DependsOn(args.Broker.Containers), pulumi.DeleteBeforeReplace(true))
}

// sentinelEnv is the env that makes redis-ops follow the Sentinels (none outside the sentinel
// topology): their addresses, the master name and their password.
func sentinelEnv(access OpsAccess, password string) []string {
	if len(access.Sentinels) == 0 {
		return nil
	}
	return []string{"REDIS_SENTINELS=" + strings.Join(access.Sentinels, ","), "REDIS_SENTINEL_MASTER=" + access.MasterName,
		"REDIS_SENTINEL_PASSWORD=" + password}
}

// remoteFlags are the backup container's plain remote flags: endpoint, bucket, prefix, region.
func remoteFlags(r BackupRemote) []string {
	cmd := []string{"--remote-endpoint", r.Endpoint, "--remote-bucket", r.Bucket, "--remote-prefix", r.Prefix}
	if r.Region != "" {
		cmd = append(cmd, "--remote-region", r.Region)
	}
	return cmd
}

// remoteEnv is env plus the remote credentials, as a secret array.
func remoteEnv(env pulumi.StringArrayInput, c RemoteCredentials) pulumi.StringArrayOutput {
	return pulumi.ToSecret(pulumi.All(env, c.AccessKey, c.SecretKey).ApplyT(func(v []any) []string {
		return append(append([]string{}, v[0].([]string)...), "REDIS_OPS_REMOTE_ACCESS_KEY="+v[1].(string), "REDIS_OPS_REMOTE_SECRET_KEY="+v[2].(string))
	})).(pulumi.StringArrayOutput)
}
