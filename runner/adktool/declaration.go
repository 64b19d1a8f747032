package adktool

import (
	"errors"
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"
	"google.golang.org/adk/agent"
	"google.golang.org/adk/model"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"
	"google.golang.org/genai"
)

// functionTool is what ADK's agent loop needs of a function tool, as functiontool.New's has it.
type functionTool interface {
	tool.Tool
	Declaration() *genai.FunctionDeclaration
	Run(ctx agent.ToolContext, args any) (map[string]any, error)
	ProcessRequest(ctx agent.ToolContext, req *model.LLMRequest) error
}

// declared is a function tool whose declaration offers the model the languages it may send as an
// enum. The enum is only declared: ADK's function tool validates the arguments against the
// schema it holds, and a language off the enum would then fail the call with a schema error,
// where the model should get invalid_request and a sentence that says what to send (the
// handlers check the language themselves).
type declared struct {
	functionTool
	params *jsonschema.Schema
}

// declare is the tool fc with handler, its language parameter declared as one of languages and,
// if description is not empty, described so.
func declare[In any](fc functiontool.Config, handler functiontool.Func[In, Output], languages []string, description string) (tool.Tool, error) {
	t, err := functiontool.New(fc, handler)
	if err != nil {
		return nil, err
	}
	ft, ok := t.(functionTool)
	if !ok {
		return nil, fmt.Errorf("adktool: ADK's function tool %T has no Declaration, Run or ProcessRequest", t)
	}
	params, err := jsonschema.For[In](nil)
	if err != nil {
		return nil, err
	}
	lang := params.Properties["language"]
	if lang == nil {
		return nil, errors.New("adktool: the tool's input has no language")
	}
	for _, l := range languages {
		lang.Enum = append(lang.Enum, l)
	}
	if description != "" {
		lang.Description = description
	}
	return declared{functionTool: ft, params: params}, nil
}

// Declaration is the function tool's, with the languages' enum.
func (d declared) Declaration() *genai.FunctionDeclaration {
	decl := *d.functionTool.Declaration()
	decl.ParametersJsonSchema = d.params
	return &decl
}

// ProcessRequest adds the tool to the model's request as the function tool does, then puts this
// declaration in place of its own. The calls still reach the function tool's Run, which is the
// same as this one's.
func (d declared) ProcessRequest(ctx agent.ToolContext, req *model.LLMRequest) error {
	if err := d.functionTool.ProcessRequest(ctx, req); err != nil {
		return err
	}
	if req.Config == nil {
		return nil
	}
	for _, t := range req.Config.Tools {
		if t == nil {
			continue
		}
		for i, fd := range t.FunctionDeclarations {
			if fd != nil && fd.Name == d.Name() {
				t.FunctionDeclarations[i] = d.Declaration()
			}
		}
	}
	return nil
}
