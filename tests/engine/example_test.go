package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// Example_assertYourStack is what a user's CI adds for its own stack (README, "Assert your stack's
// resource config"): deploy it through the Automation API, check that a second preview plans nothing,
// then assert on the resource config the engine recorded. It compiles with the tests; it runs against a
// real engine only in a user's CI (no Output comment), as tests/engine does here.
func Example_assertYourStack() {
	ctx := context.Background()
	// The checkout holding Pulumi.yaml; the backend and passphrase as the CI has them.
	stack, err := auto.UpsertStackLocalSource(ctx, "prod", ".", auto.EnvVars(map[string]string{
		"PULUMI_BACKEND_URL": "file:///var/lib/ci/pulumi-state", "PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/pulumi-passphrase",
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := stack.SetAllConfigWithOptions(ctx, auto.ConfigMap{
		"container.dataHostPath": {Value: "/srv/emailclient/redis"},
		"emailService.image":     {Value: "registry.example.com/email-service@sha256:..."},
	}, &auto.ConfigOptions{Path: true}); err != nil {
		log.Fatal(err)
	}
	if _, err := stack.Up(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := stack.Preview(ctx, optpreview.ExpectNoChanges()); err != nil {
		log.Fatal("a second preview plans changes: ", err)
	}
	exported, err := stack.Export(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var deployment apitype.DeploymentV3
	if err := json.Unmarshal(exported.Deployment, &deployment); err != nil {
		log.Fatal(err)
	}
	for _, r := range deployment.Resources {
		// Your rule: the Redis container keeps its 2 GiB memory limit and a read-only root.
		if r.Type == "docker:index/container:Container" && r.URN.Name() == "broker-redis" {
			if r.Inputs["memory"] != float64(2048) || r.Inputs["readOnly"] != true {
				log.Fatalf("broker-redis: memory %v MB, readOnly %v", r.Inputs["memory"], r.Inputs["readOnly"])
			}
			fmt.Println("broker-redis: 2048 MB, read-only root")
		}
	}
}
