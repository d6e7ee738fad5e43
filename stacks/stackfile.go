package stacks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"

	"github.com/pulumi/esc"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
)

// StackFileConfig reads Pulumi.<stack>.yaml as the engine passes it to the program: full keys to raw
// values (objects as JSON), with the project's declared defaults applied and validated by the CLI's
// own code (so a key Pulumi.yaml declares without a default fails here as it fails `pulumi up`).
// This reader has no passphrase: encrypted password and opsPassword values (set the documented way,
// `pulumi config set --secret`) are left out, as if generated (they shape no file it reads them for:
// redis.conf holds no password); any other encrypted value is refused.
func StackFileConfig(root, stack string) (map[string]string, error) {
	if !stackNameRe.MatchString(stack) || stack == "." || stack == ".." {
		return nil, fmt.Errorf("stack %q: not a stack name; accepted: letters, digits, _ . - (Pulumi's stack names)", stack)
	}
	project, err := workspace.LoadProject(filepath.Join(root, "Pulumi.yaml"))
	if err != nil {
		return nil, fmt.Errorf("Pulumi.yaml: %w", err)
	}
	ps, err := workspace.LoadProjectStack(nil, project, filepath.Join(root, "Pulumi."+stack+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("Pulumi.%s.yaml: %w", stack, err)
	}
	for k, v := range ps.Config {
		switch {
		case !v.Secure():
		case k.Namespace() == Project && (k.Name() == KeyPassword || k.Name() == KeyOpsPassword):
			delete(ps.Config, k)
		default:
			return nil, fmt.Errorf("Pulumi.%s.yaml: %s is encrypted; this reader takes plain values only (encrypted: %s and %s)", stack, k, KeyPassword, KeyOpsPassword)
		}
	}
	return ProjectConfig(project, stack, ps.Config)
}

// ProjectConfig is what the Pulumi CLI hands the program for a stack whose own config is stackConfig
// (plain values only): the project's declared defaults applied and every declaration checked, with
// the CLI's code (workspace.ValidateStackConfigAndApplyProjectConfig).
func ProjectConfig(project *workspace.Project, stack string, stackConfig config.Map) (map[string]string, error) {
	merged := maps.Clone(stackConfig)
	if merged == nil {
		merged = config.Map{}
	}
	if err := workspace.ValidateStackConfigAndApplyProjectConfig(context.Background(), stack, project, esc.Value{},
		merged, config.NopEncrypter, config.NopDecrypter); err != nil {
		return nil, fmt.Errorf("Pulumi.yaml and Pulumi.%s.yaml, as the Pulumi CLI reads them: %w", stack, err)
	}
	out := map[string]string{}
	for k, v := range merged {
		s, err := v.Value(config.NopDecrypter)
		if err != nil {
			return nil, fmt.Errorf("Pulumi.%s.yaml: %s: %w", stack, k, err)
		}
		out[k.String()] = s
	}
	return out, nil
}

var stackNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// LoadStackFile loads the settings of a stack from its Pulumi.<stack>.yaml in root, outside of a
// Pulumi run (e.g. to print the redis.conf a stack would run). Encrypted values are not read.
func LoadStackFile(root, stack string) (Settings, error) {
	cfg, err := StackFileConfig(root, stack)
	if err != nil {
		return Settings{}, err
	}
	return Load(stack, MapSource{Values: cfg})
}

// FindRoot finds the project root (the directory holding Pulumi.yaml) from the working directory up.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "Pulumi.yaml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("Pulumi.yaml not found in the working directory or above it")
		}
		dir = parent
	}
}
