package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/runner"
)

const (
	flagConfig           = "config"
	flagGatewayListen    = "listen"
	flagAdminListen      = "admin-listen"
	flagCADir            = "ca-dir"
	flagSecretsDir       = "secrets-dir"
	flagUpstreamCA       = "upstream-ca"
	flagRootsFile        = "roots-file"
	flagAdvertise        = "advertise"
	flagAdvertiseService = "advertise-service"
	flagGatewayNamespace = "gateway-namespace"
	flagPodSelector      = "pod-selector"
	flagAdminTokenFile   = "admin-token-file"
	flagRequireToken     = "require-token"
	flagSecretsReload    = "secrets-reload"

	// defaultRootsFile is Debian's bundle of public roots (ca-certificates), which the gkexec image
	// carries: what the gateway verifies destinations with, and appends to the CA in sandboxes'
	// bundle.
	defaultRootsFile = "/etc/ssl/certs/ca-certificates.crt"
)

func gatewayCommand() *cli.Command {
	return &cli.Command{
		Name:  "gateway",
		Usage: "serve the egress gateway: the forward proxy through which a namespace's sandboxes reach the domains it allows",
		Description: `Serves HTTP and HTTPS (CONNECT) for the sandboxes of --namespace, which it identifies by their
Pod IP from a watch on their Pods, on --listen; the admin API (health, Prometheus metrics, per-sandbox
counts) on --admin-listen, which sandboxes must not reach. The policy is the --config file (a
ConfigMap): the allow-list, and the secrets bound to hosts. With secrets, HTTPS to their hosts is
intercepted with leaf certificates of the CA in --ca-dir (only the gateway may read its key), and the placeholder gkexec-secret:NAME in a request's headers becomes the value of the
file NAME in --secrets-dir (a mounted Secret, re-read every --secrets-reload).

With --advertise or --advertise-service it publishes, in the sandbox namespace, the proxy settings
and CA certificate that sandbox Pods take (ConfigMaps gkexec-egress-proxy and gkexec-egress-ca),
and where the runner finds its admin API. Runs until SIGTERM, then drains for 30 s.

Examples:
   gkexec gateway -n gkexec --config /etc/gkexec-gateway/policy.yaml --advertise-service gkexec-egress-gateway
   gkexec gateway -n gkexec --config policy.yaml --ca-dir ca/ --secrets-dir secrets/ --advertise $(POD_IP)
   gkexec gateway ca --out-dir ca --domain api.example.com`,
		Flags: append(clusterFlags(),
			&cli.StringFlag{Name: flagConfig, EnvVars: env("gateway-" + flagConfig), TakesFile: true, Usage: "the policy `FILE` (YAML or JSON): allow, secrets, denied_prefixes (gateway.Config)"},
			&cli.StringFlag{Name: flagGatewayListen, Value: ":" + strconv.Itoa(egress.ProxyPort), Usage: "`ADDRESS` of the proxy, for sandboxes"},
			&cli.StringFlag{Name: flagAdminListen, Value: ":" + strconv.Itoa(egress.AdminPort), Usage: "`ADDRESS` of the admin API (never for sandboxes); empty for none"},
			&cli.StringFlag{Name: flagCADir, TakesFile: true, Usage: "`DIR` holding the namespace CA's ca.crt and ca.key (a mounted Secret, readable by the gateway alone), as `gkexec gateway ca` writes them; needed when secrets are bound. Empty or missing: no CA"},
			&cli.StringFlag{Name: flagSecretsDir, TakesFile: true, Usage: "`DIR` holding one file per secret (a mounted Secret)"},
			&cli.DurationFlag{Name: flagSecretsReload, Value: 30 * time.Second, Usage: "re-read --secrets-dir this often (Kubernetes updates a mounted Secret in place)"},
			&cli.StringFlag{Name: flagUpstreamCA, TakesFile: true, Usage: "extra root certificates `FILE` (PEM) to verify destinations with, besides --roots-file"},
			&cli.StringFlag{Name: flagRootsFile, Value: defaultRootsFile, TakesFile: true, Usage: "public root certificates `FILE`; when absent, the system's roots verify destinations and sandboxes' bundle holds only the CA and --upstream-ca"},
			&cli.StringFlag{Name: flagAdvertise, EnvVars: env("gateway-" + flagAdvertise), Usage: "publish this `IP[:PORT]` as where sandboxes reach the proxy (the Pod's IP where Service addresses route nowhere)"},
			&cli.StringFlag{Name: flagAdvertiseService, Usage: "publish the cluster IP of this `SERVICE` (its port named proxy) in --gateway-namespace"},
			&cli.StringFlag{Name: flagGatewayNamespace, EnvVars: []string{"POD_NAMESPACE"}, Usage: "the gateway's own `NAMESPACE` (published for the runner)"},
			&cli.StringFlag{Name: flagPodSelector, Value: gateway.DefaultPodSelector, Usage: "label `SELECTOR` of the sandbox Pods"},
			&cli.StringFlag{Name: flagAdminTokenFile, TakesFile: true, Usage: "require the bearer token in `FILE` on the admin API's /v1/ paths"},
			&cli.BoolFlag{Name: flagRequireToken, Usage: "identify sandboxes by their proxy token only, never by source address"},
		),
		Action:      gatewayAction,
		Subcommands: []*cli.Command{gatewayCACommand()},
	}
}

func gatewayAction(c *cli.Context) error {
	stderr := c.App.ErrWriter
	if c.Args().Len() > 0 {
		return usageError("gateway takes no arguments, got %q", c.Args().Slice())
	}
	if c.String(flagConfig) == "" {
		return usageError("--%s is required: the policy file", flagConfig)
	}
	if c.IsSet(flagAdvertise) && c.IsSet(flagAdvertiseService) {
		return usageError("--%s and --%s: give one", flagAdvertise, flagAdvertiseService)
	}
	log := serveLogger(c, stderr)
	cfg, err := gateway.LoadConfig(c.String(flagConfig))
	if err != nil {
		return usageError("--%s: %v", flagConfig, err)
	}
	opts, err := cfg.Options()
	if err != nil {
		return usageError("--%s: %v", flagConfig, err)
	}
	opts.Logger, opts.RequireToken = log, c.Bool(flagRequireToken)
	roots, err := gatewayRoots(c, &opts)
	if err != nil {
		return usageError("%v", err)
	}
	if err := gatewayCA(c, &opts); err != nil {
		return usageError("%v", err)
	}
	if dir := c.String(flagSecretsDir); dir != "" {
		secrets, err := gateway.LoadSecretsDir(dir)
		if err != nil {
			return usageError("--%s: %v", flagSecretsDir, err)
		}
		opts.SecretValues = secrets
		go secrets.Watch(c.Context, c.Duration(flagSecretsReload), log)
	}
	if f := c.String(flagAdminTokenFile); f != "" {
		if opts.AdminToken, err = readToken(f, ""); err != nil {
			return usageError("--%s: %v", flagAdminTokenFile, err)
		}
	}

	var client kubernetes.Interface
	if opts.Directory == nil || c.IsSet(flagAdvertise) || c.IsSet(flagAdvertiseService) {
		if client, err = runner.NewClient(clusterOptions(c)); err != nil {
			return cli.Exit(err, exitRunner)
		}
	}
	if opts.Directory == nil {
		dir := gateway.NewPodDirectory(client, c.String(flagNamespace), c.String(flagPodSelector), log)
		if err := dir.Start(c.Context); err != nil {
			return cli.Exit(err, exitRunner)
		}
		opts.Directory = dir
	}
	gw, err := gateway.New(opts)
	if err != nil {
		return usageError("%v", err)
	}
	proxy, err := net.Listen("tcp", c.String(flagGatewayListen))
	if err != nil {
		return cli.Exit(fmt.Sprintf("--%s: %v", flagGatewayListen, err), exitRunner)
	}
	var admin net.Listener
	if addr := c.String(flagAdminListen); addr != "" {
		if admin, err = net.Listen("tcp", addr); err != nil {
			_ = proxy.Close()
			return cli.Exit(fmt.Sprintf("--%s: %v", flagAdminListen, err), exitRunner)
		}
	}
	if err := publish(c, client, opts.CA, roots, admin); err != nil {
		_ = proxy.Close()
		if admin != nil {
			_ = admin.Close()
		}
		return cli.Exit(err, exitRunner)
	}
	if err := gw.Serve(c.Context, proxy, admin); err != nil {
		return cli.Exit(err, exitRunner)
	}
	return nil
}

// clusterOptions are the cluster flags as runner.Options, for the client.
func clusterOptions(c *cli.Context) runner.Options {
	return runner.Options{
		KubeconfigPath: c.String(flagKubeconfig), KubeconfigContext: c.String(flagContext),
		QPS: float32(c.Float64(flagQPS)), Burst: c.Int(flagBurst),
	}
}

// gatewayRoots reads the roots destinations are verified with (and sandboxes' bundle holds): the
// public roots file, if present, and --upstream-ca.
func gatewayRoots(c *cli.Context, opts *gateway.Options) ([]byte, error) {
	var pem []byte
	if f := c.String(flagRootsFile); f != "" {
		b, err := os.ReadFile(f)
		switch {
		case err == nil:
			pem = append(pem, b...)
		case !errors.Is(err, os.ErrNotExist) || c.IsSet(flagRootsFile):
			return nil, fmt.Errorf("--%s: %w", flagRootsFile, err)
		}
	}
	if f := c.String(flagUpstreamCA); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flagUpstreamCA, err)
		}
		pem = append(append(pem, '\n'), b...)
	}
	if len(pem) == 0 {
		return nil, nil // the system's roots
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--%s and --%s hold no PEM certificate", flagRootsFile, flagUpstreamCA)
	}
	opts.UpstreamRootCAs = pool
	return pem, nil
}

// gatewayCA loads the CA from --ca-dir: both files, or neither (no interception; a Secret
// that is optional in the Deployment and not created mounts an empty directory).
func gatewayCA(c *cli.Context, opts *gateway.Options) error {
	dir := c.String(flagCADir)
	if dir == "" {
		return nil
	}
	read := func(name string) ([]byte, bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		return b, err == nil, err
	}
	cert, hasCert, err := read("ca.crt")
	if err != nil {
		return fmt.Errorf("--%s: %w", flagCADir, err)
	}
	key, hasKey, err := read("ca.key")
	if err != nil {
		return fmt.Errorf("--%s: %w", flagCADir, err)
	}
	switch {
	case !hasCert && !hasKey:
		return nil
	case hasCert != hasKey:
		return fmt.Errorf("--%s %s: ca.crt and ca.key go together; it holds one", flagCADir, dir)
	}
	if opts.CA, err = gateway.LoadCA(cert, key, time.Now()); err != nil {
		return fmt.Errorf("--%s %s: %w", flagCADir, dir, err)
	}
	return nil
}

// publish writes the sandbox namespace's ConfigMaps when an address to advertise is given.
func publish(c *cli.Context, client kubernetes.Interface, ca *gateway.CA, roots []byte, admin net.Listener) error {
	addr, svc := c.String(flagAdvertise), c.String(flagAdvertiseService)
	if addr == "" && svc == "" {
		return nil
	}
	gwNamespace := c.String(flagGatewayNamespace)
	if gwNamespace == "" {
		return cli.Exit(fmt.Sprintf("--%s (or POD_NAMESPACE) is required to publish", flagGatewayNamespace), exitUsage)
	}
	var err error
	if svc != "" {
		if addr, err = gateway.ServiceAddress(c.Context, client, gwNamespace, svc, "proxy"); err != nil {
			return err
		}
	} else if addr, err = advertised(addr, c.String(flagGatewayListen)); err != nil {
		return cli.Exit(fmt.Sprintf("--%s: %v", flagAdvertise, err), exitUsage)
	}
	adminPort := 0
	if admin != nil {
		adminPort = admin.Addr().(*net.TCPAddr).Port
	}
	return gateway.Publish(c.Context, client, gateway.Publication{
		Namespace: c.String(flagNamespace), Proxy: addr, GatewayNamespace: gwNamespace,
		AdminPort: adminPort, CA: ca, Roots: roots,
	})
}

// advertised is an --advertise value as IP:PORT: an IP address alone takes the proxy listener's
// port. Sandboxes have no DNS, so a name will not do.
func advertised(value, listen string) (string, error) {
	if ap, err := netip.ParseAddrPort(value); err == nil {
		return ap.String(), nil
	}
	ip, err := netip.ParseAddr(strings.Trim(value, "[]"))
	if err != nil {
		return "", fmt.Errorf("%q: want an IP address, with or without a port (sandboxes have no DNS)", value)
	}
	port := strconv.Itoa(egress.ProxyPort)
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "" && p != "0" {
		port = p
	}
	return net.JoinHostPort(ip.String(), port), nil
}
