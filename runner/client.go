package runner

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent identifies the runner to the API server (audit logs, API priority and fairness).
var UserAgent = "gkexec"

// LoadRESTConfig resolves the cluster connection the way Options documents: an explicit
// kubeconfig (with optional context), else the in-cluster service account, else the default
// kubeconfig (KUBECONFIG or ~/.kube/config). QPS and Burst come from the options (defaults applied).
func LoadRESTConfig(o Options) (*rest.Config, error) {
	o.setDefaults()
	var cfg *rest.Config
	var err error
	switch {
	case o.RESTConfig != nil:
		cfg = rest.CopyConfig(o.RESTConfig)
	case o.KubeconfigPath != "":
		cfg, err = kubeconfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: o.KubeconfigPath}, o.KubeconfigContext)
		if err != nil {
			return nil, fmt.Errorf("%w: kubeconfig %s: %w", ErrCluster, o.KubeconfigPath, err)
		}
	default:
		if o.KubeconfigContext == "" {
			cfg, err = rest.InClusterConfig()
			if err == nil {
				break
			}
			if !errors.Is(err, rest.ErrNotInCluster) {
				return nil, fmt.Errorf("%w: in-cluster config: %w", ErrCluster, err)
			}
		}
		cfg, err = kubeconfig(clientcmd.NewDefaultClientConfigLoadingRules(), o.KubeconfigContext)
		if err != nil {
			return nil, fmt.Errorf("%w: not running in a cluster and no usable kubeconfig (set --kubeconfig or KUBECONFIG): %w", ErrCluster, err)
		}
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgent
	}
	return cfg, nil
}

func kubeconfig(rules *clientcmd.ClientConfigLoadingRules, context string) (*rest.Config, error) {
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
}

// NewClient returns Options.Client if set, otherwise a clientset for LoadRESTConfig.
func NewClient(o Options) (kubernetes.Interface, error) {
	if o.Client != nil {
		return o.Client, nil
	}
	cfg, err := LoadRESTConfig(o)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCluster, err)
	}
	return cs, nil
}

// restConfigForAttach is the REST config attach needs: a runner given only a clientset
// (Options.Client without RESTConfig) cannot attach, and so runs everything cold.
func restConfigForAttach(o Options) (*rest.Config, error) {
	if o.Client != nil && o.RESTConfig == nil {
		return nil, errors.New("Options.Client was given without Options.RESTConfig")
	}
	return LoadRESTConfig(o)
}
