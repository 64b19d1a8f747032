package sandbox

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// AttachFunc connects stdin and stdout to the sandbox container of a Pod (pods/attach) and
// copies until ctx ends or the stream does.
type AttachFunc func(ctx context.Context, pod string, stdin io.Reader, stdout io.Writer) error

// NewAttacher attaches over WebSocket, falling back to SPDY where a proxy or an older API server
// refuses the upgrade, as kubectl does. Either way the verb is create on pods/attach. The
// container's stderr is not attached: the entrypoint writes everything to stdout, framed.
func NewAttacher(cfg *rest.Config, namespace string) AttachFunc {
	cs, err := kubernetes.NewForConfig(cfg)
	return func(ctx context.Context, pod string, stdin io.Reader, stdout io.Writer) error {
		if err != nil {
			return err
		}
		u := cs.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name(pod).SubResource("attach").
			VersionedParams(&corev1.PodAttachOptions{Container: podspec.ContainerName, Stdin: true, Stdout: true}, scheme.ParameterCodec).URL()
		ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		if err != nil {
			return fmt.Errorf("%w: attach to pod %s/%s: %w", diagnose.ErrCluster, namespace, pod, err)
		}
		spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
		if err != nil {
			return fmt.Errorf("%w: attach to pod %s/%s: %w", diagnose.ErrCluster, namespace, pod, err)
		}
		exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
		if err != nil {
			return fmt.Errorf("%w: attach to pod %s/%s: %w", diagnose.ErrCluster, namespace, pod, err)
		}
		return exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout})
	}
}
