// Package declared runs the real Pulumi program under mocks, with a stack's real Pulumi.<stack>.yaml,
// and records every resource it declares: the one source the unit, real-Redis, Celery and Docker
// tiers take the declared configuration from, so no test retypes it.
package declared

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/stacks"
)

// Type tokens of the declared resources.
const (
	ImageType     = "docker:index/image:Image"
	NetworkType   = "docker:index/network:Network"
	VolumeType    = "docker:index/volume:Volume"
	ContainerType = "docker:index/container:Container"
	PasswordType  = "random:index/randomPassword:RandomPassword"
)

// Resource is one declared resource with its inputs as the provider would receive them (secrets
// wrapped, see resource.PropertyValue.IsSecret).
type Resource struct {
	Type   string
	Name   string
	Inputs resource.PropertyMap
	// Parent is the parent's logical name ("" for the stack).
	Parent string
	// DependsOn are the logical names of explicit dependencies.
	DependsOn []string
	// ReplaceOnChanges, DeleteBeforeReplace, RetainOnDelete, Protect are the resource options.
	ReplaceOnChanges    []string
	DeleteBeforeReplace bool
	RetainOnDelete      bool
	Protect             bool
	// Aliases are the former names the resource declares (pulumi.Aliases by name).
	Aliases []string
	// Provider is the logical name of the explicit provider the resource is declared with ("" for the
	// default provider), e.g. docker-db-1 on a host of a multi-host stack.
	Provider string
}

// Options change a run.
type Options struct {
	// Config adds or replaces config values (keys of the project without namespace, others such as
	// docker:host with theirs; objects as JSON).
	Config map[string]string
	// Secrets adds config values marked secret.
	Secrets map[string]string
	// Program runs instead of stacks.Program (e.g. a function that awaits outputs).
	Program pulumi.RunFunc
	// LivePrimary is what the program finds when it asks a deployed Sentinel topology for its primary
	// (stacks.PrimaryOf): "" (the default) for a stack not deployed yet.
	LivePrimary string
}

// Result is what a run declared.
type Result struct {
	Stack     string
	Root      string
	Resources []Resource
}

// MockPassword is the value the mocks give a generated password resource of that name: deterministic,
// 40 letters and digits like the real RandomPassword.
func MockPassword(resourceName string) string {
	s := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return 'x'
	}, "mock"+resourceName+"0123456789abcdefghijklmnopqrstuvwxyz0123456789")
	return s[:40]
}

// MockImageID is the repoDigest the mocks give an image resource (a local image ID, as for
// unpushed images).
func MockImageID(resourceName string) string { return "sha256:mock-" + resourceName }

// Run evaluates the program for a stack under mocks and returns what it declared. The program's
// error (e.g. a validation error) is returned as is.
// livePrimary is Options.LivePrimary of the current Run (tests do not run in parallel).
var livePrimary string

func init() {
	// A program run with mocks reaches no Docker engine: it finds what Options.LivePrimary says.
	stacks.PrimaryOf = func(stacks.Settings) (string, error) { return livePrimary, nil }
}

func Run(stack string, opts Options) (*Result, error) {
	root, err := stacks.FindRoot()
	if err != nil {
		return nil, err
	}
	cfg, err := stacks.StackFileConfig(root, stack)
	if err != nil {
		return nil, err
	}
	var secretKeys []string
	for k, v := range opts.Config {
		cfg[fullKey(k)] = v
	}
	for k, v := range opts.Secrets {
		cfg[fullKey(k)] = v
		secretKeys = append(secretKeys, fullKey(k))
	}
	livePrimary = opts.LivePrimary
	program := opts.Program
	if program == nil {
		program = stacks.Program
	}
	m := &mocks{}
	err = pulumi.RunErr(program, pulumi.WithMocks(stacks.Project, stack, m), func(info *pulumi.RunInfo) {
		info.Config = cfg
		info.ConfigSecretKeys = secretKeys
		info.RootDirectory = root
	})
	return &Result{Stack: stack, Root: root, Resources: m.resources}, err
}

// fullKey is key in the project's namespace unless it names another (docker:host).
func fullKey(key string) string {
	if strings.Contains(key, ":") {
		return key
	}
	return stacks.Project + ":" + key
}

// ByType returns the declared resources of a type, in declaration order.
func (r *Result) ByType(typ string) []Resource {
	var out []Resource
	for _, res := range r.Resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	return out
}

// Get returns the resource of that type and logical name.
func (r *Result) Get(typ, name string) (Resource, bool) {
	for _, res := range r.Resources {
		if res.Type == typ && res.Name == name {
			return res, true
		}
	}
	return Resource{}, false
}

// RunFiles returns the files the program places in the run volume of the Redis container named node
// (the uploads of its files carrier, components.FilesCarrier), by path; false when none is declared.
func (r *Result) RunFiles(node string) (map[string]string, bool) {
	carrier, ok := r.Get(ContainerType, components.FilesCarrier(node))
	if !ok {
		return nil, false
	}
	return Uploads(carrier), true
}

// Uploads returns a declared container's uploads by path (secret or not).
func Uploads(c Resource) map[string]string {
	up := c.Inputs["uploads"]
	if up.IsSecret() {
		up = up.SecretValue().Element
	}
	out := map[string]string{}
	for _, u := range up.ArrayValue() {
		o := u.ObjectValue()
		out[o["file"].StringValue()] = o["content"].StringValue()
	}
	return out
}

// mocks records every registration and answers like the real providers would for the outputs the
// program reads (image repoDigest, generated password).
type mocks struct {
	mu        sync.Mutex
	resources []Resource
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	res := Resource{Type: args.TypeToken, Name: args.Name, Inputs: args.Inputs}
	if rpc := args.RegisterRPC; rpc != nil {
		if rpc.GetParent() != "" {
			res.Parent = resource.URN(rpc.GetParent()).Name()
		}
		for _, d := range rpc.GetDependencies() {
			res.DependsOn = append(res.DependsOn, resource.URN(d).Name())
		}
		res.ReplaceOnChanges = rpc.GetReplaceOnChanges()
		res.DeleteBeforeReplace = rpc.GetDeleteBeforeReplace()
		res.RetainOnDelete = rpc.GetRetainOnDelete()
		res.Protect = rpc.GetProtect()
		for _, a := range rpc.GetAliases() {
			if spec := a.GetSpec(); spec != nil {
				res.Aliases = append(res.Aliases, spec.GetName())
			}
		}
		if p := rpc.GetProvider(); p != "" { // a provider reference: <urn>::<id>
			res.Provider = resource.URN(p[:strings.LastIndex(p, "::")]).Name()
		}
		for _, urn := range rpc.GetAliasURNs() {
			res.Aliases = append(res.Aliases, resource.URN(urn).Name())
		}
	}
	m.mu.Lock()
	m.resources = append(m.resources, res)
	m.mu.Unlock()

	outputs := args.Inputs.Copy()
	switch args.TypeToken {
	case ImageType:
		outputs["repoDigest"] = resource.NewStringProperty(MockImageID(args.Name))
	case PasswordType:
		outputs["result"] = resource.NewSecretProperty(&resource.Secret{Element: resource.NewStringProperty(MockPassword(args.Name))})
	}
	return args.Name + "-id", outputs, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

// Output is one stack output as the program declares it: its value (as `pulumi stack output --json
// --show-secrets` prints it) and whether it is secret.
type Output struct {
	Value  any
	Secret bool
}

// Outputs runs the program for a stack under mocks (opts.Program is ignored) and returns its stack
// outputs (stacks.Outputs), awaited.
func Outputs(stack string, opts Options) (map[string]Output, error) {
	out := map[string]Output{}
	opts.Program = func(ctx *pulumi.Context) error {
		d, err := stacks.Deploy(ctx)
		if err != nil {
			return err
		}
		for name, in := range stacks.Outputs(d) {
			res, err := internals.UnsafeAwaitOutput(ctx.Context(), pulumi.ToOutput(in))
			if err != nil {
				return fmt.Errorf("output %s: %w", name, err)
			}
			out[name] = Output{Value: res.Value, Secret: res.Secret}
		}
		return nil
	}
	_, err := Run(stack, opts)
	return out, err
}
