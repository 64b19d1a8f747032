package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// schemaDir holds the recorded schemas the offline Terraform checks serve (schemas/README.md).
// They are part of the repository, so a missing file is a failure, not a skip.
const schemaDir = "schemas"

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
	s, err := loadSchema(filepath.Join(schemaDir, "google-7.45.0.json.gz"))
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
	files, _ := filepath.Glob(filepath.Join(schemaDir, "*.json.gz"))
	if len(files) == 0 {
		t.Fatalf("no schema files in %s", schemaDir)
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

// providers.sh serves the schema decompressed (schema.json beside the binary); the repository and
// these tests read the .gz. Both must give the same provider.
func TestPlainAndGzipSchemasAgree(t *testing.T) {
	t.Parallel()
	gz := filepath.Join(schemaDir, "google-7.45.0.json.gz")
	compressed, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(plain, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := loadSchema(gz)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadSchema(plain)
	if err != nil {
		t.Fatal(err)
	}
	if a.address != b.address || len(a.resources) != len(b.resources) || len(a.dataSources) != len(b.dataSources) {
		t.Errorf("gzip: %s, %d resources, %d data sources; plain: %s, %d, %d",
			a.address, len(a.resources), len(a.dataSources), b.address, len(b.resources), len(b.dataSources))
	}
	if _, err := loadSchema(filepath.Join(t.TempDir(), "missing.json.gz")); err == nil {
		t.Error("loading a missing schema succeeded")
	}
}
