package components

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// EmailServiceType is the type token of EmailService.
const EmailServiceType = "emailclient:index:EmailService"

// EmailServiceArgs are the inputs of an EmailService.
type EmailServiceArgs struct {
	// Container shapes the container; Container.Image empty means: build the reference worker from
	// BuildContext.
	Container EmailServiceContainer
	// Celery are the Celery settings passed as environment variables.
	Celery Celery
	// BuildContext is the directory of the reference worker's Dockerfile
	// (deployment/docker/email-worker). Required when Container.Image is empty.
	BuildContext string
	// Platform is the build platform of the reference worker. Defaults to linux/amd64.
	Platform string
	// Broker is the RedisBroker whose URLs, network and health the service depends on. Required.
	Broker *RedisBroker
}

// EmailService is the email service's Celery worker container, wired to a RedisBroker.
type EmailService struct {
	pulumi.ResourceState

	// ContainerName is the container's name.
	ContainerName pulumi.StringOutput `pulumi:"containerName"`
	// Image is the image the container runs.
	Image pulumi.StringOutput `pulumi:"image"`
}

// CeleryEnv returns the Celery settings as the environment variables the email-service reads,
// without the two URLs (which are secrets; see NewEmailService).
func (c Celery) CeleryEnv() map[string]string {
	return map[string]string{
		"CELERY_TASK_SERIALIZER":            c.TaskSerializer,
		"CELERY_RESULT_SERIALIZER":          c.ResultSerializer,
		"CELERY_ACCEPT_CONTENT":             strings.Join(c.AcceptContent, ","),
		"CELERY_RESULT_EXPIRES":             strconv.Itoa(c.ResultExpires),
		"CELERY_TASK_TIME_LIMIT":            strconv.Itoa(c.TaskTimeLimit),
		"CELERY_TASK_SOFT_TIME_LIMIT":       strconv.Itoa(c.TaskSoftTimeLimit),
		"CELERY_BROKER_VISIBILITY_TIMEOUT":  strconv.Itoa(c.VisibilityTimeout),
		"CELERY_WORKER_CONCURRENCY":         strconv.Itoa(c.WorkerConcurrency),
		"CELERY_TASK_ACKS_LATE":             strconv.FormatBool(c.AcksLate),
		"CELERY_TASK_REJECT_ON_WORKER_LOST": strconv.FormatBool(c.RejectOnWorkerLost),
		"CELERY_WORKER_PREFETCH_MULTIPLIER": strconv.Itoa(c.PrefetchMultiplier),
		"CELERY_LOG_LEVEL":                  c.LogLevel,
	}
}

// WorkerEnv returns the reference worker's own settings as environment variables (see
// deployment/docker/email-worker/emailworker/heartbeat.py); other images ignore them.
func (c EmailServiceContainer) WorkerEnv() map[string]string {
	return map[string]string{"EMAILWORKER_STALL_EXIT_SECONDS": strconv.Itoa(c.StallExitSeconds)}
}

// envList renders env as sorted KEY=value lines, so the declared order is stable.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// NewEmailService registers the email-service container (and the reference worker image when no
// image is given). It starts after the broker's Redis container is healthy.
func NewEmailService(ctx *pulumi.Context, name string, args *EmailServiceArgs, opts ...pulumi.ResourceOption) (*EmailService, error) {
	if err := args.validate(); err != nil {
		return nil, fmt.Errorf("emailservice %q: %w", name, err)
	}
	s := &EmailService{}
	if err := ctx.RegisterComponentResource(EmailServiceType, name, s, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(s)
	image := pulumi.String(args.Container.Image).ToStringOutput()
	if args.Container.Image == "" {
		built, err := docker.NewImage(ctx, name+"-image", &docker.ImageArgs{
			ImageName: pulumi.String(ReferenceWorkerImage(args.Container.Name)),
			SkipPush:  pulumi.Bool(true),
			Build: &docker.DockerBuildArgs{
				Context:    pulumi.String(args.BuildContext),
				Dockerfile: pulumi.String(filepath.Join(args.BuildContext, "Dockerfile")),
				Args:       pulumi.StringMap{"BASE_IMAGE": pulumi.String(args.Container.BaseImage)},
				Platform:   pulumi.String(args.platform()),
			},
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("emailservice %q: %w", name, err)
		}
		image = built.RepoDigest
	}
	b := args.Broker
	env := pulumi.All(b.BrokerURL, b.ResultBackendURL, b.SentinelPassword).ApplyT(func(v []any) []string {
		e := args.Celery.CeleryEnv()
		e["CELERY_BROKER_URL"], e["CELERY_RESULT_BACKEND"] = v[0].(string), v[1].(string)
		if b.Topology.Sentinel() {
			// kombu and the result backend find the primary through the Sentinels by this name, and
			// need the Sentinels' own password (sentinel_kwargs), or they report "No master found".
			e["CELERY_SENTINEL_MASTER_NAME"] = b.Topology.MasterName
			e["CELERY_SENTINEL_PASSWORD"] = v[2].(string)
		}
		for k, v := range args.Container.WorkerEnv() {
			e[k] = v
		}
		return envList(e)
	}).(pulumi.StringArrayOutput)
	c := args.Container
	var tmpfs pulumi.StringMap
	if c.ReadOnlyRoot {
		tmpfs = pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,size=64m")}
	}
	container, err := docker.NewContainer(ctx, name+"-container", &docker.ContainerArgs{
		Name:    pulumi.String(c.Name),
		Image:   image,
		Restart: pulumi.String("unless-stopped"),
		// The URLs carry the password: the whole env array is secret.
		Envs: pulumi.ToSecret(env).(pulumi.StringArrayOutput),
		// Hardening: no capabilities (a Celery worker needs none), no privilege escalation, a read-only
		// root with a small /tmp, memory without swap and a process cap.
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		ReadOnly:     pulumi.Bool(c.ReadOnlyRoot),
		Tmpfs:        tmpfs,
		Memory:       pulumi.Int(megabytes(c.Memory)),
		MemorySwap:   pulumi.Int(megabytes(c.Memory)),
		Ulimits:      maxProcesses(c.MaxProcesses),
		// SIGTERM starts Celery's warm shutdown: running tasks finish within the grace.
		StopTimeout:         pulumi.Int(c.StopGraceSeconds),
		DestroyGraceSeconds: pulumi.Int(c.StopGraceSeconds),
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{&docker.ContainerNetworksAdvancedArgs{
			Name: b.Network,
		}},
		LogDriver: pulumi.String("json-file"),
		LogOpts:   logOpts(args.Container.Log),
		// `pulumi up` goes on once the worker takes tasks from Redis (its probe passes).
		Healthcheck: healthcheckArgs(c.Healthcheck.Command, c.Healthcheck.Healthcheck),
		Wait:        pulumi.Bool(c.Healthcheck.Waits()),
		WaitTimeout: pulumi.Int(waitTimeoutSeconds),
	}, parent,
		pulumi.DependsOn(b.Containers), // created with wait: true, i.e. healthy
		pulumi.DeleteBeforeReplace(true),
		// A changed probe never reaches a running container in place.
		pulumi.ReplaceOnChanges([]string{"healthcheck"}))
	if err != nil {
		return nil, fmt.Errorf("emailservice %q: %w", name, err)
	}
	s.ContainerName = container.Name
	s.Image = image
	return s, ctx.RegisterResourceOutputs(s, pulumi.Map{"containerName": s.ContainerName, "image": s.Image})
}

// maxProcesses is the nproc ulimit of n processes (none when n is 0).
func maxProcesses(n int) docker.ContainerUlimitArray {
	if n == 0 {
		return nil
	}
	return docker.ContainerUlimitArray{&docker.ContainerUlimitArgs{Name: pulumi.String("nproc"), Soft: pulumi.Int(n), Hard: pulumi.Int(n)}}
}

// platform is Platform or its default, linux/amd64.
func (a *EmailServiceArgs) platform() string {
	if a.Platform == "" {
		return "linux/amd64"
	}
	return a.Platform
}

func (a *EmailServiceArgs) validate() error {
	if a == nil {
		return errors.New("args are required")
	}
	var errs []error
	if a.Broker == nil || a.Broker.Container == nil {
		errs = append(errs, errors.New("Broker: required (a RedisBroker)"))
	}
	if a.Container.Image == "" && a.BuildContext == "" {
		errs = append(errs, errors.New("BuildContext: required when emailService.image is empty"))
	}
	return errors.Join(append(errs, a.Container.Validate("emailService."), a.Celery.Validate("celery."))...)
}
