// Command adk-go-agent is an ADK for Go agent that writes Python and runs it in a gVisor sandbox
// through gkexec's execute_code tool.
//
//	GOOGLE_API_KEY=... adk-go-agent -namespace agent-sandbox -prompt "What is the 50th prime?"
//	adk-go-agent -sidecar http://127.0.0.1:8080 web -port 8000 api     # ADK's REST API
//	adk-go-agent -model offline -prompt 'print(6*7)'                    # no model: smoke test
//
// The sandbox runs either in-process (this process's ServiceAccount creates the Jobs) or in a
// `gkexec serve` sidecar (-sidecar: the credentials stay there). See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/cmd/launcher"
	"google.golang.org/adk/cmd/launcher/console"
	"google.golang.org/adk/cmd/launcher/universal"
	"google.golang.org/adk/cmd/launcher/web"
	"google.golang.org/adk/cmd/launcher/web/api"
	"google.golang.org/adk/model"
	"google.golang.org/adk/model/gemini"
	adkrunner "google.golang.org/adk/runner"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"
	"google.golang.org/genai"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
	"github.com/gkexec/gkexec/server"
)

const (
	defaultModel = "gemini-2.5-flash"
	// offlineModel names the stand-in model: it runs each message as the program and answers
	// with the output. No key, no network: for checking a deployment end to end.
	offlineModel = "offline"

	instruction = `You are a careful assistant that answers questions by writing and running Python.
Use the execute_code tool for anything that needs computation, data processing or checking a
fact by running code. Each call runs in a fresh, empty sandbox without network access: send a
complete program and print what you need. If it fails, read stderr, fix the program and try again.
Answer with the result, not with the code.`
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("adk-go-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelName := fs.String("model", envOr("AGENT_MODEL", defaultModel), `Gemini model (key in GOOGLE_API_KEY), or "offline": a stand-in that runs each message as Python`)
	sidecar := fs.String("sidecar", os.Getenv("GKEXEC_URL"), "URL of a gkexec serve sidecar (e.g. http://127.0.0.1:8080); empty: run sandboxes in-process")
	tokenFile := fs.String("token-file", os.Getenv("GKEXEC_TOKEN_FILE"), "bearer token for the sidecar (or GKEXEC_SERVE_TOKEN)")
	namespace := fs.String("namespace", envOr("GKEXEC_NAMESPACE", runner.DefaultNamespace), "in-process: namespace for the sandbox Jobs")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "in-process: kubeconfig (default: in-cluster config)")
	prompt := fs.String("prompt", "", "answer this message, print the answer and exit; without it the remaining arguments go to ADK's launcher (console, or web [-port N] api)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: adk-go-agent [flags] [console | web [-port 8000] api]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	exec, timeout, closeExec, err := executor(ctx, *sidecar, *tokenFile, *namespace, *kubeconfig)
	if err != nil {
		log.Error("no sandbox", "error", err)
		return 1
	}
	defer closeExec()
	execTool, err := adktool.New(adktool.Config{Executor: exec, Timeout: timeout})
	if err != nil {
		log.Error("tool", "error", err)
		return 1
	}
	llm, err := newModel(ctx, *modelName)
	if err != nil {
		log.Error("model", "model", *modelName, "error", err)
		return 1
	}
	a, err := llmagent.New(llmagent.Config{
		Name:        "coder",
		Description: "Answers questions by writing Python and running it in a gVisor sandbox.",
		Model:       llm,
		Instruction: instruction,
		Tools:       []tool.Tool{execTool},
	})
	if err != nil {
		log.Error("agent", "error", err)
		return 1
	}

	if *prompt != "" {
		answer, err := ask(ctx, log, a, *prompt)
		if err != nil {
			log.Error("agent run failed", "error", err)
			return 1
		}
		fmt.Fprintln(stdout, answer)
		return 0
	}
	l := universal.NewLauncher(console.NewLauncher(), web.NewLauncher(api.NewLauncher()))
	if err := l.Execute(ctx, &launcher.Config{AgentLoader: agent.NewSingleLoader(a)}, fs.Args()); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("launcher", "error", err, "usage", l.CommandLineSyntax())
		return 1
	}
	return 0
}

// executor is a sidecar client when a URL is given, else an in-process runner. It also returns
// the sandbox's time limit, for the tool's description.
func executor(ctx context.Context, sidecar, tokenFile, namespace, kubeconfig string) (adktool.Executor, time.Duration, func(), error) {
	if sidecar == "" {
		r, err := runner.New(runner.Options{Namespace: namespace, KubeconfigPath: kubeconfig})
		if err != nil {
			return nil, 0, nil, err
		}
		return r, r.Options().Timeout, func() { _ = r.Close() }, nil
	}
	token := os.Getenv("GKEXEC_SERVE_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, 0, nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	c := server.NewClient(sidecar, token)
	// The sidecar may still be starting with the Pod: wait for it, up to a minute.
	var cfg server.Config
	var err error
	for deadline := time.Now().Add(time.Minute); ; {
		if cfg, err = c.Config(ctx); err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return nil, 0, nil, fmt.Errorf("sidecar %s: %w", sidecar, err)
	}
	return c, time.Duration(cfg.TimeoutSeconds * float64(time.Second)), func() {}, nil
}

func newModel(ctx context.Context, name string) (model.LLM, error) {
	if name == offlineModel {
		return &adktooltest.Model{}, nil
	}
	key := envOr("GOOGLE_API_KEY", os.Getenv("GEMINI_API_KEY"))
	if key == "" && os.Getenv("GOOGLE_GENAI_USE_VERTEXAI") == "" {
		return nil, errors.New("set GOOGLE_API_KEY (or GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION), or use -model offline")
	}
	return gemini.NewModel(ctx, name, &genai.ClientConfig{APIKey: key})
}

// ask runs one message through ADK's runner and returns the final answer, logging each tool call.
func ask(ctx context.Context, log *slog.Logger, a agent.Agent, message string) (string, error) {
	r, err := adkrunner.New(adkrunner.Config{AppName: "adk-go-agent", Agent: a,
		SessionService: session.InMemoryService(), AutoCreateSession: true})
	if err != nil {
		return "", err
	}
	var answer strings.Builder
	for ev, err := range r.Run(ctx, "user", "session", genai.NewContentFromText(message, genai.RoleUser), agent.RunConfig{}) {
		if err != nil {
			return "", err
		}
		if ev.Content == nil {
			continue
		}
		for _, p := range ev.Content.Parts {
			switch {
			case p.FunctionResponse != nil:
				resp := p.FunctionResponse.Response
				if e, failed := resp["error"]; failed {
					log.Warn("tool failed", "name", p.FunctionResponse.Name, "error", e)
					continue
				}
				log.Info("tool", "name", p.FunctionResponse.Name, "status", resp["status"], "exit_code", resp["exit_code"],
					"execution_id", resp["execution_id"], "total_seconds", resp["total_seconds"])
			case p.Text != "" && ev.IsFinalResponse():
				answer.WriteString(p.Text)
			}
		}
	}
	return answer.String(), nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
