// Package components holds the Pulumi components of the email service's Celery broker: RedisBroker
// (image, network, volumes, passwords, Redis container) and EmailService (the Celery worker container).
package components

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

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
	// waitTimeoutSeconds bounds how long `pulumi up` waits for the Redis container to turn healthy.
	waitTimeoutSeconds = 180
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
}

// RedisBroker is a Redis 7 server deployed as a Celery broker and result backend.
type RedisBroker struct {
	pulumi.ResourceState

	// Host is the name clients on Network use to reach Redis (the network alias).
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

	// Container is the Redis container; depend on it to start after Redis is healthy.
	Container *docker.Container
}

// Validate checks the args; keys are reported with the stack setting names.
func (a *RedisBrokerArgs) Validate() error {
	var errs []error
	if a.BuildContext == "" {
		errs = append(errs, errors.New("BuildContext: required (the directory of deployment/docker/redis)"))
	}
	if a.Database < 0 || a.Database > 15 {
		errs = append(errs, &redisconf.FieldError{Key: "Database", Value: a.Database, Accepted: "accepted: 0 to 15"})
	}
	return errors.Join(append(errs,
		a.Config.Validate("redis."),
		a.Container.Validate("container."),
		ValidateMemoryHeadroom(a.Config, a.Container, "container."))...)
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
	})
}

func (b *RedisBroker) build(ctx *pulumi.Context, name string, args *RedisBrokerArgs) error {
	c := args.Container
	parent := pulumi.Parent(b)
	celeryPw, err := passwordOrGenerated(ctx, name+"-celery-password", args.CeleryPassword, parent)
	if err != nil {
		return err
	}
	opsPw, err := passwordOrGenerated(ctx, name+"-ops-password", args.OpsPassword, parent)
	if err != nil {
		return err
	}
	image, err := docker.NewImage(ctx, name+"-image", &docker.ImageArgs{
		ImageName: pulumi.String(c.ImageName),
		SkipPush:  pulumi.Bool(true),
		Build: &docker.DockerBuildArgs{
			Context:    pulumi.String(args.BuildContext),
			Dockerfile: pulumi.String(filepath.Join(args.BuildContext, "Dockerfile")),
			Args:       pulumi.StringMap{"BASE_IMAGE": pulumi.String(c.BaseImage)},
			Platform:   pulumi.String(c.Platform),
		},
	}, parent)
	if err != nil {
		return err
	}
	network, err := docker.NewNetwork(ctx, name+"-network", &docker.NetworkArgs{
		Name:   pulumi.String(c.Network),
		Driver: pulumi.String("bridge"),
	}, parent, pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return err
	}
	volumes, err := b.volumes(ctx, name, c, parent)
	if err != nil {
		return err
	}
	uploads := pulumi.All(celeryPw, opsPw).ApplyT(func(pws []any) []docker.ContainerUpload {
		return RuntimeFiles(args.Config, pws[0].(string), pws[1].(string))
	}).(docker.ContainerUploadArrayOutput)
	container, err := docker.NewContainer(ctx, name+"-redis", &docker.ContainerArgs{
		Name:    pulumi.String(c.Name),
		Image:   image.RepoDigest,
		Command: pulumi.StringArray{pulumi.String(redisconf.ConfigFile)},
		User:    pulumi.String("redis"),
		Restart: pulumi.String(c.Restart),
		// Hardening: read-only root, writable /data and /run/redis volumes and a small /tmp, no
		// capabilities (Redis starts as its own user on volumes it owns), no privilege escalation.
		ReadOnly:     pulumi.Bool(true),
		Tmpfs:        pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,size=16m")},
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		Healthcheck:  healthcheckArgs(c.Healthcheck),
		LogDriver:    pulumi.String("json-file"),
		LogOpts:      logOpts(c.Log),
		Volumes:      volumes,
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{&docker.ContainerNetworksAdvancedArgs{
			Name:    network.Name,
			Aliases: pulumi.StringArray{pulumi.String(RedisAlias)},
		}},
		Ports: ports(args.Config.Port, c),
		// The uploads hold the ACL hashes and the healthcheck's password: the whole array is secret.
		Uploads:     pulumi.ToSecret(uploads).(docker.ContainerUploadArrayOutput),
		Wait:        pulumi.Bool(true),
		WaitTimeout: pulumi.Int(waitTimeoutSeconds),
		// Limits (0 = none): memory without swap, so that maxmemory plus fork headroom is the real bound.
		Memory:            pulumi.Int(megabytes(c.Memory)),
		MemorySwap:        pulumi.Int(megabytes(c.Memory)),
		MemoryReservation: pulumi.Int(megabytes(c.MemoryReservation)),
		Cpus:              optionalString(c.CPUs),
		CpuShares:         pulumi.Int(c.CPUShares),
	}, parent,
		pulumi.DeleteBeforeReplace(true), // fixed container name
		pulumi.ReplaceOnChanges([]string{"healthcheck"}),
		pulumi.AdditionalSecretOutputs([]string{"uploads"}))
	if err != nil {
		return err
	}
	b.Container = container
	b.Host = pulumi.String(RedisAlias).ToStringOutput()
	b.Port = pulumi.Int(args.Config.Port).ToIntOutput()
	b.Network = network.Name
	b.ContainerName = container.Name
	b.Image = image.RepoDigest
	url := celeryURL(celeryPw, args.Config.Port, args.Database)
	b.BrokerURL = url
	b.ResultBackendURL = url
	b.OpsPassword = opsPw
	return nil
}

// volumes declares the data volume (or the host path) at /data and the runtime volume at /run/redis.
func (b *RedisBroker) volumes(ctx *pulumi.Context, name string, c RedisContainer, parent pulumi.ResourceOption) (docker.ContainerVolumeArray, error) {
	run, err := docker.NewVolume(ctx, name+"-run", &docker.VolumeArgs{Name: pulumi.String(c.Name + "-run")},
		parent, pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return nil, err
	}
	runMount := &docker.ContainerVolumeArgs{VolumeName: run.Name, ContainerPath: pulumi.String(redisconf.RunDir)}
	if c.DataHostPath != "" {
		return docker.ContainerVolumeArray{
			&docker.ContainerVolumeArgs{HostPath: pulumi.String(c.DataHostPath), ContainerPath: pulumi.String(redisconf.DataDir)},
			runMount,
		}, nil
	}
	// The data volume outlives the stack: `pulumi destroy` must never take queued tasks with it.
	data, err := docker.NewVolume(ctx, name+"-data", &docker.VolumeArgs{Name: pulumi.String(c.Volume)},
		parent, pulumi.RetainOnDelete(true), pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return nil, err
	}
	return docker.ContainerVolumeArray{
		&docker.ContainerVolumeArgs{VolumeName: data.Name, ContainerPath: pulumi.String(redisconf.DataDir)},
		runMount,
	}, nil
}

// RuntimeFiles are the files uploaded into /run/redis at container creation: the rendered
// redis.conf, the ACL file (SHA-256 hashes only) and the healthcheck's password file. The directory
// is private to the redis user (mode 0700 in the image), so the files are world-readable in it.
func RuntimeFiles(cfg redisconf.Config, celeryPassword, opsPassword string) []docker.ContainerUpload {
	file := func(path, content string) docker.ContainerUpload {
		return docker.ContainerUpload{File: path, Content: &content, Permissions: pulumi.StringRef("0444")}
	}
	return []docker.ContainerUpload{
		file(redisconf.ConfigFile, cfg.Render()),
		file(redisconf.ACLFile, redisconf.ACLFileContent(celeryPassword, opsPassword)),
		file(redisconf.OpsPasswordFile, opsPassword),
	}
}

// passwordOrGenerated returns the given password, or a generated one, always as a secret.
func passwordOrGenerated(ctx *pulumi.Context, name string, given pulumi.StringInput, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	if given != nil {
		return pulumi.ToSecret(given.ToStringOutput()).(pulumi.StringOutput), nil
	}
	pw, err := random.NewRandomPassword(ctx, name, &random.RandomPasswordArgs{
		Length:  pulumi.Int(GeneratedPasswordLength),
		Special: pulumi.Bool(false), // letters and digits: URL-safe and shell-safe
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

func healthcheckArgs(h Healthcheck) *docker.ContainerHealthcheckArgs {
	return &docker.ContainerHealthcheckArgs{
		Tests:       pulumi.StringArray{pulumi.String("CMD"), pulumi.String(HealthcheckCommand)},
		Interval:    pulumi.String(h.Interval),
		Timeout:     pulumi.String(h.Timeout),
		Retries:     pulumi.Int(h.Retries),
		StartPeriod: pulumi.String(h.StartPeriod),
	}
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

func optionalString(s string) pulumi.StringPtrInput {
	if s == "" {
		return nil
	}
	return pulumi.String(s)
}
