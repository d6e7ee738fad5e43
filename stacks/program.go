package stacks

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components"
)

// Build contexts, relative to the project root (where Pulumi.yaml is).
const (
	RedisBuildContext  = "deployment/docker/redis"
	WorkerBuildContext = "deployment/docker/email-worker"
)

// Program is the Pulumi program of every stack: it loads and validates the settings (before any
// resource is registered), builds the RedisBroker and the email-service, and exports the outputs.
func Program(ctx *pulumi.Context) error {
	s, err := Load(ctx.Stack(), ContextSource{Ctx: ctx})
	if err != nil {
		return fmt.Errorf("stack %q settings: %w", ctx.Stack(), err)
	}
	root, err := buildRoot(ctx)
	if err != nil {
		return err
	}
	broker, err := components.NewRedisBroker(ctx, "redis", &components.RedisBrokerArgs{
		Config:         s.Redis,
		Container:      s.Container,
		Database:       s.Celery.Database,
		BuildContext:   filepath.Join(root, RedisBuildContext),
		CeleryPassword: secretOrNil(s.Password),
		OpsPassword:    secretOrNil(s.OpsPassword),
	})
	if err != nil {
		return err
	}
	ctx.Export("redisHost", broker.Host)
	ctx.Export("redisPort", broker.Port)
	ctx.Export("redisHostPort", pulumi.Int(s.Container.HostPort))
	ctx.Export("network", broker.Network)
	ctx.Export("redisContainer", broker.ContainerName)
	ctx.Export("redisImage", broker.Image)
	ctx.Export("celeryBrokerUrl", broker.BrokerURL)
	ctx.Export("celeryResultBackend", broker.ResultBackendURL)
	ctx.Export("opsPassword", broker.OpsPassword)
	if !s.EmailService.Enabled {
		return nil
	}
	svc, err := components.NewEmailService(ctx, "email-service", &components.EmailServiceArgs{
		Container:    s.EmailService,
		Celery:       s.Celery,
		BuildContext: filepath.Join(root, WorkerBuildContext),
		Platform:     s.Container.Platform,
		Broker:       broker,
	})
	if err != nil {
		return err
	}
	ctx.Export("emailServiceContainer", svc.ContainerName)
	return nil
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
