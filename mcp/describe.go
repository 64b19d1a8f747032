package mcp

import (
	"context"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gkexec/gkexec/runner"
)

// DescribeInput is describe_sandbox's arguments: none.
type DescribeInput struct{}

// Description is what describe_sandbox answers.
type Description struct {
	Namespace string     `json:"namespace" jsonschema:"The Kubernetes namespace the sandboxes run in."`
	Languages []Language `json:"languages" jsonschema:"The values of the tools' language argument, the default first."`
	Image     string     `json:"image" jsonschema:"The sandbox's container image."`
	// RuntimeClass is empty when the sandbox runs without one (not isolated by gVisor).
	RuntimeClass string   `json:"runtime_class" jsonschema:"The sandbox Pod's RuntimeClass (gvisor); empty when there is none, which is not a sandbox."`
	WorkDir      string   `json:"work_dir" jsonschema:"The code's working directory; input files appear under it."`
	OutputDir    string   `json:"output_dir" jsonschema:"Files the code writes under it come back."`
	Limits       Limits   `json:"limits"`
	Sessions     Terms    `json:"sessions"`
	WarmPool     WarmPool `json:"warm_pool"`
}

// Limits are what one execution may use.
type Limits struct {
	TimeoutSeconds        float64 `json:"timeout_seconds" jsonschema:"Run time of one execution, at most and by default."`
	StartTimeoutSeconds   float64 `json:"start_timeout_seconds" jsonschema:"How long a sandbox may take to start."`
	CPULimit              string  `json:"cpu_limit"`
	MemoryLimit           string  `json:"memory_limit" jsonschema:"Past it the code is killed (status oom); files under the working directory count against it."`
	ScratchSize           string  `json:"scratch_size" jsonschema:"Size of the working directory and of /tmp, each."`
	MaxOutputBytes        int64   `json:"max_output_bytes" jsonschema:"Of stdout and of stderr, each, kept by the sandbox."`
	MaxAnswerOutputBytes  int     `json:"max_answer_output_bytes" jsonschema:"Of stdout and of stderr, each, in a tool's answer (progress notifications carry it all)."`
	MaxFileBytes          int64   `json:"max_file_bytes" jsonschema:"Of all output files of one execution together."`
	MaxInputBytes         int     `json:"max_input_bytes" jsonschema:"Of code and input files together."`
	MaxProcesses          int64   `json:"max_processes" jsonschema:"Processes and threads the code may run at once; negative: no limit."`
	EphemeralStorageLimit string  `json:"ephemeral_storage_limit"`
}

// Terms are when a session ends.
type Terms struct {
	IdleTimeoutSeconds float64 `json:"idle_timeout_seconds" jsonschema:"A session that runs nothing for this long ends; the default and most of open_session's idle_timeout_seconds."`
	MaxLifetimeSeconds float64 `json:"max_lifetime_seconds" jsonschema:"A session ends this long after it opened; the default and most of open_session's max_lifetime_seconds."`
}

// WarmPool is the state of the pool of pre-started sandboxes.
type WarmPool struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled" jsonschema:"Executions take a pre-started sandbox when one is ready; otherwise (or when false) they start one, in about a second."`
	Idle    int    `json:"idle" jsonschema:"Pre-started sandboxes waiting for an execution."`
	Ready   int    `json:"ready" jsonschema:"Of the idle ones, those ready to take one now."`
	Claimed int    `json:"claimed" jsonschema:"Sandboxes of the pool in use: executions, sessions, and those held ready by a runner."`
	Error   string `json:"error,omitempty" jsonschema:"Why the pool's state is unknown."`
}

// maxInputBytes is what code and input files may take: one ConfigMap.
const maxInputBytes = 1 << 20

func (s *Server) describeSandbox(ctx context.Context, _ *sdk.CallToolRequest, _ DescribeInput) (*sdk.CallToolResult, *Description, error) {
	o := s.run.Options()
	d := Description{
		Namespace: o.Namespace, Languages: languages, Image: o.Image, WorkDir: runner.WorkDir, OutputDir: runner.OutputDir,
		Limits: Limits{
			TimeoutSeconds: o.Timeout.Seconds(), StartTimeoutSeconds: o.StartTimeout.Seconds(),
			CPULimit: o.CPULimit, MemoryLimit: o.MemoryLimit, ScratchSize: o.ScratchSizeLimit, EphemeralStorageLimit: o.EphemeralStorageLimit,
			MaxOutputBytes: o.MaxOutputBytes, MaxAnswerOutputBytes: s.opts.MaxOutputBytes, MaxFileBytes: o.MaxFileBytes,
			MaxInputBytes: maxInputBytes, MaxProcesses: o.MaxProcesses,
		},
		Sessions: Terms{IdleTimeoutSeconds: o.SessionIdleTimeout.Seconds(), MaxLifetimeSeconds: o.SessionMaxLifetime.Seconds()},
		WarmPool: s.warmPool(ctx, o),
	}
	if !o.NoRuntimeClass {
		d.RuntimeClass = o.RuntimeClassName
	}
	return toolResult(d, nil, nil), &d, nil
}

// warmPool counts the pool's Pods by state, as `gkexec doctor` does (without judging whether
// they match these options: doctor says that).
func (s *Server) warmPool(ctx context.Context, o runner.Options) WarmPool {
	wp := WarmPool{Name: o.WarmPool, Enabled: !o.NoWarmPool}
	if o.NoWarmPool {
		return wp
	}
	sel := labels.Set{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelPool: o.WarmPool}.String()
	pods, err := s.run.Client().CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		wp.Error = "cannot list the pool's pods: " + err.Error()
		return wp
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		switch p.Labels[runner.LabelPoolState] {
		case runner.PoolStateClaimed:
			wp.Claimed++
		case runner.PoolStateIdle:
			wp.Idle++
			if ready(p) {
				wp.Ready++
			}
		}
	}
	return wp
}

// ready: the Pod runs and reports Ready, its containers never restarted.
func ready(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil || cs.RestartCount > 0 {
			return false
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
