package runner

// Labels on every object the runner creates. gc, the shared Pod watch and the sandbox
// NetworkPolicy all select on them, so they are part of the kit's contract.
const (
	// LabelManagedBy marks objects made by gkexec; its value is ManagedByValue.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "gkexec"
	// LabelComponent distinguishes sandbox Pods (ComponentSandbox) from anything else in the namespace,
	// such as the agent itself.
	LabelComponent   = "app.kubernetes.io/component"
	ComponentSandbox = "sandbox"
	// LabelExecutionID carries the execution ID, shared by the ConfigMap, the Job and its Pod.
	LabelExecutionID = "gkexec.dev/execution-id"
)
