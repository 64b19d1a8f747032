package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// The JSON shapes below are those of `terraform providers schema -json` (format_version 1.0).

type schemasFile struct {
	FormatVersion   string                    `json:"format_version"`
	ProviderSchemas map[string]providerSchema `json:"provider_schemas"`
}

type providerSchema struct {
	Provider    jsonSchema            `json:"provider"`
	Resources   map[string]jsonSchema `json:"resource_schemas"`
	DataSources map[string]jsonSchema `json:"data_source_schemas"`
}

type jsonSchema struct {
	Version int64     `json:"version"`
	Block   jsonBlock `json:"block"`
}

type jsonBlock struct {
	Attributes      map[string]jsonAttribute `json:"attributes"`
	BlockTypes      map[string]jsonBlockType `json:"block_types"`
	Description     string                   `json:"description"`
	DescriptionKind string                   `json:"description_kind"`
	Deprecated      bool                     `json:"deprecated"`
}

type jsonAttribute struct {
	Type            json.RawMessage `json:"type"`
	NestedType      *jsonNestedType `json:"nested_type"`
	Description     string          `json:"description"`
	DescriptionKind string          `json:"description_kind"`
	Required        bool            `json:"required"`
	Optional        bool            `json:"optional"`
	Computed        bool            `json:"computed"`
	Sensitive       bool            `json:"sensitive"`
	Deprecated      bool            `json:"deprecated"`
	WriteOnly       bool            `json:"write_only"`
}

type jsonNestedType struct {
	Attributes  map[string]jsonAttribute `json:"attributes"`
	NestingMode string                   `json:"nesting_mode"`
}

type jsonBlockType struct {
	NestingMode string    `json:"nesting_mode"`
	Block       jsonBlock `json:"block"`
	MinItems    int64     `json:"min_items"`
	MaxItems    int64     `json:"max_items"`
}

// replaySchema is one provider's schema converted to the plugin protocol's types.
type replaySchema struct {
	address     string
	provider    *tfprotov6.Schema
	resources   map[string]*tfprotov6.Schema
	dataSources map[string]*tfprotov6.Schema
}

// loadSchema reads a schema file holding exactly one provider; a name ending in .gz is
// gzip-compressed (how the repository ships them, see schemas/README.md).
func loadSchema(path string) (*replaySchema, error) {
	raw, err := readSchemaFile(path)
	if err != nil {
		return nil, err
	}
	var file schemasFile
	if err := json.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("parsing provider schema %s: %w", path, err)
	}
	if len(file.ProviderSchemas) != 1 {
		return nil, fmt.Errorf("provider schema %s: want exactly one provider, found %d", path, len(file.ProviderSchemas))
	}
	for address, p := range file.ProviderSchemas {
		s := &replaySchema{
			address:     address,
			resources:   map[string]*tfprotov6.Schema{},
			dataSources: map[string]*tfprotov6.Schema{},
		}
		if s.provider, err = convertSchema(p.Provider); err != nil {
			return nil, fmt.Errorf("%s provider block: %w", address, err)
		}
		for name, js := range p.Resources {
			if s.resources[name], err = convertSchema(js); err != nil {
				return nil, fmt.Errorf("%s resource %s: %w", address, name, err)
			}
		}
		for name, js := range p.DataSources {
			if s.dataSources[name], err = convertSchema(js); err != nil {
				return nil, fmt.Errorf("%s data source %s: %w", address, name, err)
			}
		}
		return s, nil
	}
	panic("unreachable")
}

func readSchemaFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading provider schema: %w", err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return raw, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading provider schema %s: %w", path, err)
	}
	defer zr.Close()
	if raw, err = io.ReadAll(zr); err != nil {
		return nil, fmt.Errorf("decompressing provider schema %s: %w", path, err)
	}
	return raw, nil
}

func convertSchema(js jsonSchema) (*tfprotov6.Schema, error) {
	block, err := convertBlock(js.Block)
	if err != nil {
		return nil, err
	}
	return &tfprotov6.Schema{Version: js.Version, Block: block}, nil
}

func convertBlock(jb jsonBlock) (*tfprotov6.SchemaBlock, error) {
	attrs, err := convertAttributes(jb.Attributes)
	if err != nil {
		return nil, err
	}
	block := &tfprotov6.SchemaBlock{
		Attributes:      attrs,
		Description:     jb.Description,
		DescriptionKind: stringKind(jb.DescriptionKind),
		Deprecated:      jb.Deprecated,
	}
	for _, name := range sortedKeys(jb.BlockTypes) {
		bt := jb.BlockTypes[name]
		nested, err := convertBlock(bt.Block)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", name, err)
		}
		mode, ok := blockNesting[bt.NestingMode]
		if !ok {
			return nil, fmt.Errorf("block %s: unknown nesting mode %q", name, bt.NestingMode)
		}
		block.BlockTypes = append(block.BlockTypes, &tfprotov6.SchemaNestedBlock{
			TypeName: name,
			Block:    nested,
			Nesting:  mode,
			MinItems: bt.MinItems,
			MaxItems: bt.MaxItems,
		})
	}
	return block, nil
}

func convertAttributes(in map[string]jsonAttribute) ([]*tfprotov6.SchemaAttribute, error) {
	var out []*tfprotov6.SchemaAttribute
	for _, name := range sortedKeys(in) {
		ja := in[name]
		attr := &tfprotov6.SchemaAttribute{
			Name:            name,
			Description:     ja.Description,
			DescriptionKind: stringKind(ja.DescriptionKind),
			Required:        ja.Required,
			Optional:        ja.Optional,
			Computed:        ja.Computed,
			Sensitive:       ja.Sensitive,
			Deprecated:      ja.Deprecated,
			WriteOnly:       ja.WriteOnly,
		}
		switch {
		case ja.NestedType != nil:
			nestedAttrs, err := convertAttributes(ja.NestedType.Attributes)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", name, err)
			}
			mode, ok := objectNesting[ja.NestedType.NestingMode]
			if !ok {
				return nil, fmt.Errorf("attribute %s: unknown nesting mode %q", name, ja.NestedType.NestingMode)
			}
			attr.NestedType = &tfprotov6.SchemaObject{Attributes: nestedAttrs, Nesting: mode}
		case len(ja.Type) > 0:
			t, err := tftypes.ParseJSONType(ja.Type) //nolint:staticcheck // the schema file is JSON type syntax by definition
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", name, err)
			}
			attr.Type = t
		default:
			return nil, fmt.Errorf("attribute %s has neither type nor nested_type", name)
		}
		out = append(out, attr)
	}
	return out, nil
}

var blockNesting = map[string]tfprotov6.SchemaNestedBlockNestingMode{
	"single": tfprotov6.SchemaNestedBlockNestingModeSingle,
	"list":   tfprotov6.SchemaNestedBlockNestingModeList,
	"set":    tfprotov6.SchemaNestedBlockNestingModeSet,
	"map":    tfprotov6.SchemaNestedBlockNestingModeMap,
	"group":  tfprotov6.SchemaNestedBlockNestingModeGroup,
}

var objectNesting = map[string]tfprotov6.SchemaObjectNestingMode{
	"single": tfprotov6.SchemaObjectNestingModeSingle,
	"list":   tfprotov6.SchemaObjectNestingModeList,
	"set":    tfprotov6.SchemaObjectNestingModeSet,
	"map":    tfprotov6.SchemaObjectNestingModeMap,
}

func stringKind(kind string) tfprotov6.StringKind {
	if kind == "markdown" {
		return tfprotov6.StringKindMarkdown
	}
	return tfprotov6.StringKindPlain
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
