package server

import (
	"net/http"

	"github.com/gkexec/gkexec/runner"
)

// Config is the body of GET /v1/config: what every execution through this server gets. Agents
// read it to describe the sandbox to a model; the Python executor checks its constructor
// arguments against it.
type Config struct {
	Namespace           string  `json:"namespace"`
	Image               string  `json:"image"`
	RuntimeClassName    string  `json:"runtime_class_name"`
	TimeoutSeconds      float64 `json:"timeout_seconds"`
	StartTimeoutSeconds float64 `json:"start_timeout_seconds"`
	CPURequest          string  `json:"cpu_request"`
	MemoryRequest       string  `json:"memory_request"`
	CPULimit            string  `json:"cpu_limit"`
	MemoryLimit         string  `json:"memory_limit"`
	MaxOutputBytes      int64   `json:"max_output_bytes"`
	MaxFileBytes        int64   `json:"max_file_bytes"`
	MaxBodyBytes        int64   `json:"max_body_bytes"`
	MaxConcurrent       int     `json:"max_concurrent"`
	WorkDir             string  `json:"work_dir"`
	OutputDir           string  `json:"output_dir"`
	// Languages are those code may be in; the image must have each one's interpreter (python3
	// always: it runs the entrypoint). `gkexec doctor`'s smoke execution says which the image has.
	Languages []string `json:"languages"`
}

func configOf(o runner.Options, s Options) Config {
	return Config{
		Namespace: o.Namespace, Image: o.Image, RuntimeClassName: o.RuntimeClassName,
		TimeoutSeconds: o.Timeout.Seconds(), StartTimeoutSeconds: o.StartTimeout.Seconds(),
		CPURequest: o.CPURequest, MemoryRequest: o.MemoryRequest, CPULimit: o.CPULimit, MemoryLimit: o.MemoryLimit,
		MaxOutputBytes: o.MaxOutputBytes, MaxFileBytes: o.MaxFileBytes,
		MaxBodyBytes: s.MaxBodyBytes, MaxConcurrent: s.MaxConcurrent,
		WorkDir: runner.WorkDir, OutputDir: runner.OutputDir, Languages: runner.Languages(),
	}
}

func (s *Server) handleConfig(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, http.StatusOK, configOf(s.run.Options(), s.opts), "")
}
