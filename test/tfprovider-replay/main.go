// Command terraform-provider-replay serves a provider schema recorded with
// `terraform providers schema -json` over the plugin protocol (version 6), so that
// `terraform validate` and `terraform test` with mock_provider check a module against the
// real provider's schema without the Terraform registry.
//
// The schema comes from $GKEXEC_REPLAY_SCHEMA, or else from schema.json beside the
// executable, which is how test/terraform/providers.sh lays out its filesystem mirror.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
)

const schemaEnv = "GKEXEC_REPLAY_SCHEMA"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "terraform-provider-replay:", err)
		os.Exit(1)
	}
}

func run() error {
	path, err := schemaPath()
	if err != nil {
		return err
	}
	schema, err := loadSchema(path)
	if err != nil {
		return err
	}
	// `-schema-address` lets a human check which schema a binary serves.
	if len(os.Args) > 1 && os.Args[1] == "-schema-address" {
		fmt.Println(schema.address)
		return nil
	}
	return tf6server.Serve(schema.address, func() tfprotov6.ProviderServer {
		return &replayProvider{schema: schema}
	})
}

func schemaPath() (string, error) {
	if p := os.Getenv(schemaEnv); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating schema.json beside the executable (or set %s): %w", schemaEnv, err)
	}
	return filepath.Join(filepath.Dir(exe), "schema.json"), nil
}
