// Package adktooltest has a model.LLM stand-in that drives ADK's real agent loop through the
// execute_code tool without any external model: no network, no API key. Tests use it to prove
// the tool end to end; deployments use it for a smoke check (examples/adk-go-agent --model
// offline).
package adktooltest

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"sync"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/artifact"
	"google.golang.org/adk/model"
	adkrunner "google.golang.org/adk/runner"
	"google.golang.org/adk/session"
	"google.golang.org/genai"

	"github.com/gkexec/gkexec/runner/adktool"
)

// Model answers each user message in two turns, as a model that uses the tool would: first it
// asks for one execute_code call, then, given the tool's response, it answers with what the tool
// returned. It is safe for concurrent use.
type Model struct {
	// Args builds the tool call's arguments from the user's message. Default: run the message
	// as the program ({"code": message}).
	Args func(userText string) map[string]any
	// Answer renders the final answer from the tool's response. Default: Render.
	Answer func(response map[string]any) string
	// ToolName is the tool to call. Default adktool.DefaultName.
	ToolName string

	mu       sync.Mutex
	requests []*model.LLMRequest
}

// Name implements model.LLM.
func (m *Model) Name() string { return "adktooltest-scripted" }

// Requests returns the requests the agent loop made, in order.
func (m *Model) Requests() []*model.LLMRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*model.LLMRequest(nil), m.requests...)
}

// GenerateContent implements model.LLM: a function call when the conversation ends with the
// user's message, the answer when it ends with the tool's response.
func (m *Model) GenerateContent(_ context.Context, req *model.LLMRequest, _ bool) iter.Seq2[*model.LLMResponse, error] {
	m.mu.Lock()
	m.requests = append(m.requests, req)
	m.mu.Unlock()
	return func(yield func(*model.LLMResponse, error) bool) {
		resp, err := m.respond(req)
		yield(resp, err)
	}
}

func (m *Model) respond(req *model.LLMRequest) (*model.LLMResponse, error) {
	name := m.ToolName
	if name == "" {
		name = adktool.DefaultName
	}
	if len(req.Contents) == 0 {
		return nil, fmt.Errorf("adktooltest: empty conversation")
	}
	last := req.Contents[len(req.Contents)-1]
	for _, p := range last.Parts {
		if p.FunctionResponse != nil && p.FunctionResponse.Name == name {
			answer := m.Answer
			if answer == nil {
				answer = Render
			}
			return &model.LLMResponse{Content: genai.NewContentFromText(answer(p.FunctionResponse.Response), genai.RoleModel),
				TurnComplete: true, FinishReason: genai.FinishReasonStop}, nil
		}
	}
	var text string
	for _, p := range last.Parts {
		text += p.Text
	}
	if text == "" {
		return nil, fmt.Errorf("adktooltest: the last message has neither text nor a %s response", name)
	}
	args := map[string]any{"code": text}
	if m.Args != nil {
		args = m.Args(text)
	}
	if _, ok := req.Tools[name]; !ok {
		return nil, fmt.Errorf("adktooltest: the agent offers no tool %q", name)
	}
	call := genai.NewPartFromFunctionCall(name, args)
	return &model.LLMResponse{Content: genai.NewContentFromParts([]*genai.Part{call}, genai.RoleModel),
		TurnComplete: true, FinishReason: genai.FinishReasonStop}, nil
}

// Render is the default answer: stdout when the program succeeded, otherwise the status, the
// message and stderr; for a tool error, the error.
func Render(response map[string]any) string {
	if e, ok := response["error"]; ok {
		return fmt.Sprintf("The tool failed: %v", e)
	}
	if response["status"] == adktool.StatusOK {
		s, _ := response["stdout"].(string)
		return s
	}
	b, _ := json.Marshal(map[string]any{"status": response["status"], "exit_code": response["exit_code"],
		"message": response["message"], "stderr": response["stderr"], "stdout": response["stdout"]})
	return string(b)
}

// Transcript is what one user message produced in the agent loop.
type Transcript struct {
	// Calls and Responses are the tool calls the model made and the tool's answers, in order.
	Calls     []*genai.FunctionCall
	Responses []map[string]any
	// Answer is the text of the final response.
	Answer string
}

// Ask runs one user message through ADK's runner (in-memory sessions, the given artifact
// service if not nil) and collects what happened.
func Ask(ctx context.Context, a agent.Agent, artifacts artifact.Service, message string) (Transcript, error) {
	c := &Conversation{Agent: a, Artifacts: artifacts}
	return c.Ask(ctx, message)
}

// Conversation is one ADK session that messages are asked in, one after another: its state and
// events carry from each message to the next, as a chat's do.
type Conversation struct {
	Agent agent.Agent
	// Sessions stores the session; default: an in-memory service, made on the first Ask.
	Sessions session.Service
	// Artifacts, if not nil, is the artifact service.
	Artifacts artifact.Service
	// AppName, UserID and SessionID name the session; defaults "adktooltest", "user", "session".
	AppName, UserID, SessionID string
}

// Ask runs one user message through ADK's runner in the conversation's session and collects what
// happened.
func (c *Conversation) Ask(ctx context.Context, message string) (Transcript, error) {
	var tr Transcript
	if c.Sessions == nil {
		c.Sessions = session.InMemoryService()
	}
	app, user, id := or(c.AppName, "adktooltest"), or(c.UserID, "user"), or(c.SessionID, "session")
	r, err := adkrunner.New(adkrunner.Config{AppName: app, Agent: c.Agent, SessionService: c.Sessions,
		ArtifactService: c.Artifacts, AutoCreateSession: true})
	if err != nil {
		return tr, err
	}
	msg := genai.NewContentFromText(message, genai.RoleUser)
	for ev, err := range r.Run(ctx, user, id, msg, agent.RunConfig{}) {
		if err != nil {
			return tr, err
		}
		if ev.Content == nil {
			continue
		}
		for _, p := range ev.Content.Parts {
			switch {
			case p.FunctionCall != nil:
				tr.Calls = append(tr.Calls, p.FunctionCall)
			case p.FunctionResponse != nil:
				tr.Responses = append(tr.Responses, p.FunctionResponse.Response)
			case p.Text != "" && ev.IsFinalResponse():
				tr.Answer += p.Text
			}
		}
	}
	return tr, nil
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
