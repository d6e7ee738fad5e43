package stacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// Config keys, without the "emailclient-infra:" namespace.
const (
	KeyProfile          = "profile"
	KeyRedis            = "redis"
	KeyContainer        = "container"
	KeyTopology         = "topology"
	KeyOperations       = "operations"
	KeyRotation         = "passwordRotation"
	KeyCelery           = "celery"
	KeyEmailService     = "emailService"
	KeyPassword         = "password"
	KeyOpsPassword      = "opsPassword"
	KeyProtect          = "protect"
	KeyHosts            = "hosts"
	KeyHostsTLS         = "hostsTls"
	KeyRegistry         = "registry"
	KeyRegistryPassword = "registryPassword"
	// KeyBackupRemoteAccessKey and KeyBackupRemoteSecretKey are the secrets of operations.backup.remote.
	KeyBackupRemoteAccessKey = "backupRemoteAccessKey"
	KeyBackupRemoteSecretKey = "backupRemoteSecretKey"
	// KeyDockerHost is the docker provider's own key (another namespace): the program reads it to
	// require that the stack names its engine.
	KeyDockerHost = "docker:host"
)

// Keys lists every config key the program reads.
var Keys = []string{KeyProfile, KeyRedis, KeyContainer, KeyTopology, KeyOperations, KeyRotation, KeyCelery, KeyEmailService, KeyPassword, KeyOpsPassword, KeyProtect, KeyHosts, KeyHostsTLS, KeyRegistry, KeyRegistryPassword, KeyBackupRemoteAccessKey, KeyBackupRemoteSecretKey, KeyDockerHost}

// Source gives raw config values: objects arrive as JSON, as Pulumi passes them to programs.
type Source interface {
	// Lookup returns the raw value of a key (without namespace); ok is false when it is not set.
	Lookup(key string) (value string, ok bool, err error)
	// IsSecret reports whether a key was set as a secret.
	IsSecret(key string) bool
}

// ContextSource reads config from a running Pulumi program (or mocks).
type ContextSource struct{ Ctx *pulumi.Context }

// Lookup uses config.Try; a missing key is not an error.
func (s ContextSource) Lookup(key string) (string, bool, error) {
	v, err := config.Try(s.Ctx, key)
	if errors.Is(err, config.ErrMissingVar) {
		return "", false, nil
	}
	return v, err == nil, err
}

// IsSecret reports whether the key is a secret in the stack's config.
func (s ContextSource) IsSecret(key string) bool { return s.Ctx.IsConfigSecret(Project + ":" + key) }

// MapSource is config given as a map of keys (with or without namespace) to raw values.
type MapSource struct {
	Values  map[string]string
	Secrets map[string]bool
}

// Lookup returns the value of key or of "emailclient-infra:"+key.
func (s MapSource) Lookup(key string) (string, bool, error) {
	if v, ok := s.Values[Project+":"+key]; ok {
		return v, true, nil
	}
	v, ok := s.Values[key]
	return v, ok, nil
}

// IsSecret reports whether key is marked secret.
func (s MapSource) IsSecret(key string) bool { return s.Secrets[key] || s.Secrets[Project+":"+key] }

// Load builds and validates the settings of a stack: the defaults of its profile (the "profile" key,
// or the stack name when that is dev or prod), overridden by the stack's config objects. Unknown
// fields, wrong types, invalid values and passwords not set as secrets are errors that name the key.
func Load(stack string, src Source) (Settings, error) {
	profile, ok, err := src.Lookup(KeyProfile)
	if err != nil {
		return Settings{}, fmt.Errorf("%s: %w", KeyProfile, err)
	}
	if !ok {
		profile = stack
	}
	s, known := Defaults(profile, stack)
	if !known {
		key := KeyProfile
		if !ok {
			key = "profile (from the stack name)"
		}
		return Settings{}, fmt.Errorf("%s: %q is not accepted; accepted: %s (set %s:profile for stacks with other names)", key, profile, strings.Join(Profiles, ", "), Project)
	}
	var errs []error
	for key, target := range map[string]any{KeyRedis: &s.Redis, KeyContainer: &s.Container, KeyTopology: &s.Topology, KeyOperations: &s.Operations, KeyRotation: &s.PasswordRotation, KeyCelery: &s.Celery, KeyEmailService: &s.EmailService, KeyProtect: &s.Protect, KeyHosts: &s.Hosts, KeyRegistry: &s.Registry} {
		if err := decodeObject(src, key, target); err != nil {
			errs = append(errs, err)
		}
	}
	for key, target := range map[string]*string{KeyPassword: &s.Password, KeyOpsPassword: &s.OpsPassword, KeyRegistryPassword: &s.RegistryPassword,
		KeyBackupRemoteAccessKey: &s.BackupRemoteAccessKey, KeyBackupRemoteSecretKey: &s.BackupRemoteSecretKey} {
		v, ok, err := src.Lookup(key)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		case ok && !src.IsSecret(key):
			errs = append(errs, fmt.Errorf("%s: is set in plain text; accepted: a secret, set with `pulumi config set --secret %s <value>`", key, key))
		case ok:
			*target = v
		}
	}
	if _, ok, _ := src.Lookup(KeyHostsTLS); ok && !src.IsSecret(KeyHostsTLS) {
		errs = append(errs, fmt.Errorf("%s: is set in plain text; accepted: a secret object, set with `pulumi config set --secret --path '%s.<host>.keyMaterial' \"$(cat key.pem)\"`", KeyHostsTLS, KeyHostsTLS))
	} else if err := decodeObject(src, KeyHostsTLS, &s.HostsTLS); err != nil {
		errs = append(errs, err)
	}
	if host, _, err := src.Lookup(KeyDockerHost); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", KeyDockerHost, err))
	} else {
		s.DockerHost = host
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, err
	}
	if len(s.Hosts) > 0 && s.Topology.Sentinel() {
		s.Topology, _ = s.Topology.Place(s.Hosts) // its errors are Validate's
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// decodeObject decodes a config object over the defaults in target, refusing unknown fields so that
// a typo in a key is an error rather than a silently ignored setting.
func decodeObject(src Source, key string, target any) error {
	raw, ok, err := src.Lookup(key)
	if err != nil || !ok {
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := key
			if typeErr.Field != "" {
				field += "." + typeErr.Field
			}
			return fmt.Errorf("%s: a JSON %s is not accepted; accepted: %s", field, typeErr.Value, jsonKind(typeErr.Type.Kind().String()))
		case errors.As(err, &syntaxErr):
			return fmt.Errorf("%s: is not an object (%v); accepted: an object of settings, e.g. {maxmemory: 1gb}", key, err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return fmt.Errorf("%s.%s: unknown setting; accepted: the fields documented in Pulumi.yaml", key, field)
		default:
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	if dec.More() {
		return fmt.Errorf("%s: trailing data after the object", key)
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64":
		return "a whole number"
	case "bool":
		return "a boolean (true or false)"
	case "slice":
		return "a list"
	case "struct":
		return "an object of settings"
	}
	return "a " + goKind
}
