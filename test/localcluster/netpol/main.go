// Command kube-network-policies is the local cluster's NetworkPolicy enforcer: the controller of
// sigs.k8s.io/kube-network-policies (the reference implementation that kind ships), run on the host as
// a daemon like the kubelet, with a kubeconfig instead of an in-cluster ServiceAccount. The controller
// is upstream's, unchanged but for upstream.patch (applied by test/localcluster/lib/network.sh): the
// first packet of every new connection from or to a Pod that a NetworkPolicy selects goes to an
// NFQUEUE, and the controller accepts or drops it by the policies it watches.
//
// What this program adds: what running outside a Pod needs (the kubeconfig, a health endpoint on
// loopback that says when the rules are in place and the queue has its reader, SIGTERM handling),
// and the gate (gate.go), which keeps a new Pod's packets off the bridge
// until the controller can judge them, and the Pods that policies select off it while no enforcer runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

// tableName is the controller's nftables table (inet family); upstream's default name, and the name
// lib/network.sh removes on cluster.sh down.
const tableName = "kube-network-policies"

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig of the identity the controller watches Pods, Namespaces and NetworkPolicies as (required)")
		nodeName   = flag.String("hostname-override", "", "name of the Node whose Pods to enforce for (default: the host name)")
		queueID    = flag.Int("nfqueue-id", 100, "number of the NFQUEUE the first packets of connections go to")
		listen     = flag.String("health-bind-address", "127.0.0.1:10265", "loopback address of /healthz (rules in place, queue read) and /metrics")
		bridge     = flag.String("bridge", "gkexec0", "the Linux bridge the Pods' interfaces are ports of (the start-up gate's)")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if err := run(*kubeconfig, *nodeName, *bridge, *queueID, *listen); err != nil {
		klog.ErrorS(err, "kube-network-policies")
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName, bridge string, queueID int, listen string) error {
	if kubeconfig == "" {
		return errors.New("-kubeconfig is required")
	}
	if host, _, err := net.SplitHostPort(listen); err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-health-bind-address %q: want a loopback address and port", listen)
	}
	if nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		nodeName = h
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	// SIGTERM (cluster.sh down) as well as SIGINT. The gate stops first, so that it has shut the
	// Pods that policies select out before the controller removes its table on its way out.
	signals, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gateCtx, stopGate := context.WithCancel(context.Background())
	defer stopGate()
	ctx, stopController := context.WithCancel(context.Background())
	defer stopController()

	factory := informers.NewSharedInformerFactory(client, 0)
	pods, policies := factory.Core().V1().Pods(), factory.Networking().V1().NetworkPolicies()
	g, err := newGate(bridge, nodeName, pods, policies)
	if err != nil {
		return err
	}
	controller, err := networkpolicy.NewController(client, policies, factory.Core().V1().Namespaces(), pods,
		nil, nil, nil, nil, // no AdminNetworkPolicy / BaselineAdminNetworkPolicy
		networkpolicy.Config{
			QueueID:  queueID,
			NodeName: nodeName,
			// Fail closed: with no reader on the queue (the daemon crashed) the queued packets are dropped.
			FailOpen: false,
			// The kernel here has the conntrack fix (6.12+); DNS is evaluated like everything else.
			NetfilterBug1766Fix: false,
			// containerd 1.6 has no NRI; left on, the controller would dial the host's
			// /var/run/nri/nri.sock, another runtime's if there is one (upstream.patch makes off work).
			NRIdisabled: true,
		})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := healthy(queueID, g); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// The gate first: it drops everything on the bridge until its first sync.
	gateDone := make(chan error, 1)
	go func() { gateDone <- g.run(gateCtx) }()
	done := make(chan error, 1)
	go func() { done <- controller.Run(ctx) }()
	factory.Start(ctx.Done())
	klog.InfoS("started", "node", nodeName, "bridge", bridge, "nfqueue", queueID, "health", listen)

	// Either part giving up (the controller could not open the queue, the gate could not write its
	// table) stops both: the gate closes (gate.close), the controller removes its table.
	var ctrlErr, gateErr error
	ctrlReturned, gateReturned := false, false
	select {
	case ctrlErr = <-done:
		ctrlReturned = true
	case gateErr = <-gateDone:
		gateReturned = true
	case <-signals.Done():
	}
	failed := signals.Err() == nil
	stopGate()
	if !gateReturned {
		gateErr = <-gateDone
	}
	stopController()
	if !ctrlReturned {
		ctrlErr = <-done
	}
	factory.Shutdown()
	if failed {
		return fmt.Errorf("stopped on its own: controller: %v; gate: %v", ctrlErr, gateErr)
	}
	klog.InfoS("stopped")
	return nil
}

// healthy: the controller's table is in the kernel and a process reads the queue, so a packet that
// must be judged is judged (not dropped for want of a reader, not let through for want of a rule).
func healthy(queueID int, g *gate) error {
	if !g.synced.Load() {
		return errors.New("the start-up gate has not written its set yet")
	}
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == tableName
	}
	if !found {
		return fmt.Errorf("nftables table inet %s not there yet", tableName)
	}
	// /proc/net/netfilter/nfnetlink_queue: "queue portid waiting copy_mode copy_range dropped user_dropped id 1"
	data, err := os.ReadFile("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == strconv.Itoa(queueID) {
			return nil
		}
	}
	return fmt.Errorf("nobody reads nfqueue %d yet", queueID)
}
