package stacks_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
)

// loadProject reads Pulumi.yaml with the CLI's loader (which also checks it against Pulumi's schema).
func loadProject(t *testing.T) *workspace.Project {
	t.Helper()
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	project, err := workspace.LoadProject(filepath.Join(root, "Pulumi.yaml"))
	require.NoError(t, err)
	return project
}

// TestPulumiYamlRequiresNothing reads the config declarations as the Pulumi CLI does before `pulumi
// up` (workspace.ValidateStackConfigAndApplyProjectConfig): a stack that sets nothing must pass, since
// every setting of the program is optional (profile defaults, generated passwords). A key declared
// without a default would be required by the CLI and fail here with the CLI's own message.
func TestPulumiYamlRequiresNothing(t *testing.T) {
	project := loadProject(t)
	for _, stack := range []string{"dev", "prod", "some-other-stack"} {
		cfg, err := stacks.ProjectConfig(project, stack, config.Map{})
		require.NoError(t, err, "a stack with no config must be accepted by the CLI")
		if stack == "some-other-stack" {
			cfg[stacks.Project+":"+stacks.KeyProfile] = "dev"
		}
		// The engine is the program's to require (docker:host is the provider's key), naming the key.
		_, err = stacks.Load(stack, stacks.MapSource{Values: cfg})
		require.ErrorContains(t, err, `docker:host: "" is not accepted; required`)
		cfg[stacks.KeyDockerHost] = "unix:///var/run/docker.sock"
		_, err = stacks.Load(stack, stacks.MapSource{Values: cfg})
		if stack == "prod" {
			// Prod's one required setting is the program's to refuse, with the key named.
			require.ErrorContains(t, err, `emailService.image: "" is not accepted; required in prod`)
			continue
		}
		require.NoError(t, err, "the program must accept what the CLI passes for an empty stack")
	}
}

// TestPulumiYamlDeclaresOnlyWhatTheProgramReads keeps Pulumi.yaml and the loader in step: every declared
// key is one the program reads, objects default to {} (no override: the defaults live in Go, once), and
// the program's keys that are left undeclared are the ones with no neutral default.
func TestPulumiYamlDeclaresOnlyWhatTheProgramReads(t *testing.T) {
	project := loadProject(t)
	declared := map[string]bool{}
	for key, decl := range project.Config {
		name := strings.TrimPrefix(key, stacks.Project+":")
		declared[name] = true
		assert.Contains(t, stacks.Keys, name, "Pulumi.yaml declares %s, which the program does not read", key)
		require.NotNil(t, decl.Default, "%s: declared without a default, so the CLI requires it", key)
		assert.NotEmpty(t, decl.Description, "%s: describe the setting for `pulumi config`", key)
		if decl.TypeName() == "object" {
			assert.Equal(t, map[string]any{}, decl.Default, "%s: an object's default is {} (the profile's defaults live in stacks/settings.go)", key)
		}
	}
	var undeclared []string
	for _, key := range stacks.Keys {
		if !declared[key] {
			undeclared = append(undeclared, key)
		}
	}
	assert.ElementsMatch(t, []string{stacks.KeyProfile, stacks.KeyPassword, stacks.KeyOpsPassword, stacks.KeyProtect, stacks.KeyHosts, stacks.KeyHostsTLS, stacks.KeyRegistryPassword, stacks.KeyBackupRemoteAccessKey, stacks.KeyBackupRemoteSecretKey, stacks.KeyDockerHost}, undeclared,
		"keys left undeclared (and documented in the comment of Pulumi.yaml)")
}

// TestStackFilesAsTheCLIReadsThem: the committed stack files pass the CLI's validation, and object
// values set by path (`pulumi config set --path container.baseImage ...`) are accepted.
func TestStackFilesAsTheCLIReadsThem(t *testing.T) {
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	for _, stack := range []string{"dev", "prod"} {
		_, err := stacks.StackFileConfig(root, stack)
		require.NoError(t, err, stack)
	}
	project := loadProject(t)
	byPath := config.Map{config.MustMakeKey("docker", "host"): config.NewValue("unix:///var/run/docker.sock")}
	key := config.MustMakeKey(stacks.Project, stacks.KeyContainer)
	require.NoError(t, byPath.Set(key, config.NewObjectValue(`{"baseImage":"local/redis-base:bookworm"}`), false))
	cfg, err := stacks.ProjectConfig(project, "dev", byPath)
	require.NoError(t, err)
	s, err := stacks.Load("dev", stacks.MapSource{Values: cfg})
	require.NoError(t, err)
	assert.Equal(t, "local/redis-base:bookworm", s.Container.BaseImage)

	// A plain string where an object is declared is refused by the CLI itself, naming the key.
	bad := config.Map{key: config.NewValue(`{"baseImage":"x"}`)}
	_, err = stacks.ProjectConfig(project, "dev", bad)
	require.ErrorContains(t, err, "emailclient-infra:container' must be of type 'object'")
}
