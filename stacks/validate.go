package stacks

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// MinPasswordLength is the shortest password a profile accepts when one is configured: 32 in prod,
// 16 elsewhere. Generated passwords have components.GeneratedPasswordLength characters.
func MinPasswordLength(profile string) int {
	if profile == "prod" {
		return 32
	}
	return 16
}

// Validate checks every setting and returns all problems joined, each naming its key, its value and
// what is accepted. It runs before any resource is registered.
func (s Settings) Validate() error {
	errs := []error{
		components.ValidateBroker(s.Redis, s.Container, s.Topology),
		s.Celery.Validate(KeyCelery + "."),
		s.Celery.CheckTopology(s.Topology, KeyCelery+"."),
		s.Operations.Validate(KeyOperations + "."),
		s.EmailService.Validate(KeyEmailService + "."),
		checkPassword(KeyPassword, s.Password, s.Profile),
		checkPassword(KeyOpsPassword, s.OpsPassword, s.Profile),
	}
	if s.RegistryPassword != "" && s.Registry.Username == "" {
		errs = append(errs, &redisconf.FieldError{Key: KeyRegistryPassword, Value: "<secret>", Accepted: "it is used with registry.username; accepted: set registry.username too, or unset registryPassword"})
	}
	fail := func(key string, value any, accepted string) {
		errs = append(errs, &redisconf.FieldError{Key: key, Value: value, Accepted: accepted})
	}
	if s.Operations.Backup.Enabled && s.Operations.Backup.Remote.Enabled {
		for key, v := range map[string]string{KeyBackupRemoteAccessKey: s.BackupRemoteAccessKey, KeyBackupRemoteSecretKey: s.BackupRemoteSecretKey} {
			if v == "" || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
				fail(key, "<secret>", fmt.Sprintf("required with operations.backup.remote.enabled; accepted: a secret without spaces or control characters, set with `pulumi config set --secret %s <value>`", key))
			}
		}
	}
	errs = append(errs, s.collisions()...)
	if s.PasswordRotation < 0 || s.PasswordRotation > 1000000 {
		fail(KeyRotation, s.PasswordRotation, "accepted: a whole number from 0 to 1000000; increase it to rotate the passwords")
	}
	if s.Celery.ResultExpires == 0 && strings.HasPrefix(s.Redis.MaxMemoryPolicy, "volatile-") {
		fail("celery.resultExpires", 0, "with redis.maxmemoryPolicy "+s.Redis.MaxMemoryPolicy+" results must expire (they are the only evictable keys); accepted: 1 to 31536000 seconds")
	}
	if len(s.Hosts) == 0 {
		if err := checkDockerHost(s.DockerHost); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, components.ValidateHosts(s.Hosts, s.HostsTLS))
		if !s.Topology.Sentinel() {
			fail("topology.mode", s.Topology.Mode, "with hosts the broker is spread over them and Sentinel fails it over; accepted: sentinel")
		} else if _, err := s.Topology.Place(s.Hosts); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.Topology.CheckTLS(s.Redis, len(s.Hosts) > 0))
	errs = append(errs, s.Registry.Validate(s.Hosts, s.RegistryPassword))
	if len(s.Hosts) == 0 && (len(s.Topology.Placement.Data) > 0 || len(s.Topology.Placement.Sentinels) > 0) {
		fail("topology.placement", s.Topology.Placement, "a placement needs the hosts setting; accepted: empty on a single host")
	}
	if s.EmailService.Enabled {
		errs = append(errs, components.ValidateWorkerPlacement(s.EmailService.Placement, s.HostNames()))
	}
	if e := s.EmailService; e.Enabled && s.Profile == "prod" && !components.PinnedImage(e.Image) {
		fail("emailService.image", e.Image, "required in prod, pinned: a digest reference such as ghcr.io/acme/email-service@sha256:<64 hex digits> "+
			"(`docker inspect --format '{{index .RepoDigests 0}}' IMAGE` prints it), or a local image ID sha256:<64 hex digits> for a single host; "+
			"a tag such as :stable is never pulled again once a host has it, so hosts drift and a release is not a change Pulumi sees (dev builds the reference worker when it is empty)")
	}
	return errors.Join(errs...)
}

// dockerHostSchemes are the engine addresses the docker provider dials.
var dockerHostSchemes = []string{"unix://", "tcp://", "ssh://", "npipe://"}

// checkDockerHost requires the stack to name its Docker engine (docker:host), in a form the provider dials.
func checkDockerHost(host string) error {
	accepted := "accepted: the Docker engine this stack deploys to, set in Pulumi.<stack>.yaml (`pulumi config set docker:host unix:///var/run/docker.sock`), " +
		"starting with " + strings.Join(dockerHostSchemes, ", ") + "; without it a stack lands on whatever DOCKER_HOST or context the shell has"
	if host == "" {
		return &redisconf.FieldError{Key: KeyDockerHost, Value: "", Accepted: "required; " + accepted}
	}
	for _, scheme := range dockerHostSchemes {
		if rest, ok := strings.CutPrefix(host, scheme); ok && rest != "" && !strings.ContainsFunc(rest, unicode.IsSpace) {
			return nil
		}
	}
	return &redisconf.FieldError{Key: KeyDockerHost, Value: host, Accepted: accepted}
}

// checkPassword validates a configured password without ever echoing it.
func checkPassword(key, pw, profile string) error {
	if pw == "" {
		return nil
	}
	if n := len([]rune(pw)); n < MinPasswordLength(profile) || n > 512 {
		return &redisconf.FieldError{Key: key, Value: fmt.Sprintf("<secret of %d characters>", n),
			Accepted: fmt.Sprintf("accepted: at least %d and at most 512 characters in the %s profile", MinPasswordLength(profile), profile)}
	}
	if strings.IndexFunc(pw, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return &redisconf.FieldError{Key: key, Value: "<secret>", Accepted: "accepted: no spaces, newlines or control characters"}
	}
	return nil
}
