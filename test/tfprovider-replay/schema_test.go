package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// sharedSchemas is where the recorded schemas live: $GKEXEC_SHARED_DIR/terraform-schemas, by
// default the shared directory beside the repository.
func sharedSchemas(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("GKEXEC_SHARED_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared")
	}
	dir = filepath.Join(dir, "terraform-schemas")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no recorded schemas at %s (set GKEXEC_SHARED_DIR): %v", dir, err)
	}
	return dir
}

func findBlock(t *testing.T, b *tfprotov6.SchemaBlock, name string) *tfprotov6.SchemaNestedBlock {
	t.Helper()
	for _, nb := range b.BlockTypes {
		if nb.TypeName == name {
			return nb
		}
	}
	t.Fatalf("no block %q", name)
	return nil
}

func findAttribute(t *testing.T, b *tfprotov6.SchemaBlock, name string) *tfprotov6.SchemaAttribute {
	t.Helper()
	for _, a := range b.Attributes {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no attribute %q", name)
	return nil
}

func TestGoogleSchemaKeepsWhatTheModulesRelyOn(t *testing.T) {
	t.Parallel()
	s, err := loadSchema(filepath.Join(sharedSchemas(t), "google-7.45.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.address != "registry.terraform.io/hashicorp/google" {
		t.Errorf("address %q", s.address)
	}

	pool := s.resources["google_container_node_pool"]
	if pool == nil {
		t.Fatal("google_container_node_pool missing")
	}
	nodeConfig := findBlock(t, pool.Block, "node_config")
	if nodeConfig.Nesting != tfprotov6.SchemaNestedBlockNestingModeList || nodeConfig.MaxItems != 1 {
		t.Errorf("node_config: nesting %v, max items %d; want a list of at most 1", nodeConfig.Nesting, nodeConfig.MaxItems)
	}
	sandbox := findBlock(t, nodeConfig.Block, "sandbox_config")
	typ := findAttribute(t, sandbox.Block, "type")
	if !typ.Required || !typ.Type.Is(tftypes.String) {
		t.Errorf("sandbox_config.type: required %v, type %v; want a required string", typ.Required, typ.Type)
	}
	for _, a := range sandbox.Block.Attributes {
		if a.Name == "sandbox_type" {
			t.Error("sandbox_config still has sandbox_type, which google >= 7.22 rejects")
		}
	}

	cluster := s.resources["google_container_cluster"]
	if cluster == nil {
		t.Fatal("google_container_cluster missing")
	}
	if a := findAttribute(t, cluster.Block, "deletion_protection"); !a.Optional || !a.Type.Is(tftypes.Bool) {
		t.Errorf("deletion_protection: %+v", a)
	}
	if cluster.Block.ValueType() == nil {
		t.Error("cluster schema has no value type")
	}
}

func TestEverySchemaConverts(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(sharedSchemas(t), "*.json"))
	if len(files) == 0 {
		t.Skip("no schema files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			s, err := loadSchema(f)
			if err != nil {
				t.Fatal(err)
			}
			p := &replayProvider{schema: s}
			resp, err := p.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
			if err != nil || len(resp.Diagnostics) > 0 {
				t.Fatalf("GetProviderSchema: %v %v", err, resp.Diagnostics)
			}
			if len(resp.ResourceSchemas) == 0 || len(resp.DataSourceSchemas) == 0 {
				t.Errorf("%d resources, %d data sources", len(resp.ResourceSchemas), len(resp.DataSourceSchemas))
			}
			for name, schema := range resp.ResourceSchemas {
				if schema.ValueType() == nil {
					t.Errorf("resource %s has no value type", name)
				}
			}
			plan, _ := p.PlanResourceChange(context.Background(), &tfprotov6.PlanResourceChangeRequest{})
			if len(plan.Diagnostics) != 1 || plan.Diagnostics[0].Severity != tfprotov6.DiagnosticSeverityError {
				t.Errorf("PlanResourceChange must fail with one error diagnostic offline, got %v", plan.Diagnostics)
			}
		})
	}
}
