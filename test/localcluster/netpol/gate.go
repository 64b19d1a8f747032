package main

// The start-up gate. kube-network-policies learns a Pod's IP from the API server, which hears it from
// the kubelet up to a second or two after the Pod's containers have started (the kubelet reports it
// on its next sync); until then the Pod's packets are not queued and pass unjudged. Measured here: one
// of six gVisor Pods in a namespace with a default-deny policy opened a connection to a Pod in another
// namespace as its first act. Upstream closes that window with NRI (the runtime tells it the IP at
// sandbox creation); containerd 1.6 has no NRI.
//
// The gate closes it the other way round: a packet on the pods' bridge passes only if both of its
// addresses belong to Pods the enforcer is ready for, i.e. Running Pods of this node that no
// NetworkPolicy selects, or that one does and whose IP is already in the controller's own set of
// judged Pods (read back from the kernel, so the gate never runs ahead of the controller's rules).
// Everything else is dropped: a new Pod is cut off until the enforcer can judge it, and a Pod a new
// policy selects until the controller has taken it in. The cluster is IPv4-only, so IPv6 between
// Pods (link-local addresses, which no policy names) is dropped too.
//
// The gate also covers the enforcer's absence: the controller removes its rules when it stops, so
// on its way out the gate drops the Pods that policies select from its set and leaves its table in
// place (a crash leaves it as it was, with the controller's rules and no reader for their queue).
// Until the next start has judged them again, those Pods open no new connection; cluster.sh down
// removes the table.

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	coreinformers "k8s.io/client-go/informers/core/v1"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const (
	gateTable = "gkexec-netpol-gate" // lib/network.sh's GATE_TABLE
	gateSet   = "ready-v4"
	// The controller's set of the IPv4 addresses of local Pods that policies select.
	controllerSet = "podips-v4"
	gateKey       = "sync"
)

type gate struct {
	bridge   string
	nodeName string

	pods         corelisters.PodLister
	policies     networkinglisters.NetworkPolicyLister
	podsSynced   cache.InformerSynced
	policySynced cache.InformerSynced
	queue        workqueue.TypedRateLimitingInterface[string]

	// synced: the gate's table is in place and its set has been written at least once.
	synced atomic.Bool
}

func newGate(bridge, nodeName string, pods coreinformers.PodInformer, policies networkinginformers.NetworkPolicyInformer) (*gate, error) {
	g := &gate{
		bridge:       bridge,
		nodeName:     nodeName,
		pods:         pods.Lister(),
		policies:     policies.Lister(),
		podsSynced:   pods.Informer().HasSynced,
		policySynced: policies.Informer().HasSynced,
		// The controller takes a Pod in within milliseconds of the event that made the gate look:
		// retry soon and never back off for long.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, 500*time.Millisecond),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "gate"}),
	}
	enqueue := func(any) { g.queue.Add(gateKey) }
	handler := cache.ResourceEventHandlerFuncs{AddFunc: enqueue, DeleteFunc: enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) }}
	if _, err := pods.Informer().AddEventHandler(handler); err != nil {
		return nil, err
	}
	if _, err := policies.Informer().AddEventHandler(handler); err != nil {
		return nil, err
	}
	return g, nil
}

// run installs the gate with an empty set (everything on the bridge dropped) as soon as it starts,
// then keeps the set up to date until ctx ends, and closes the gate (see close) on its way out: the
// gate outlives the process, so that a restart or a crash never leaves the Pods that policies select
// unenforced; only cluster.sh down removes its table.
func (g *gate) run(ctx context.Context) error {
	defer g.queue.ShutDown()
	if err := g.install(); err != nil {
		return err
	}
	if !cache.WaitForNamedCacheSync("gate", ctx.Done(), g.podsSynced, g.policySynced) {
		return ctx.Err()
	}
	defer func() {
		if err := g.close(); err != nil {
			klog.ErrorS(err, "closing the gate")
		}
	}()
	g.queue.Add(gateKey)
	go func() {
		<-ctx.Done()
		g.queue.ShutDown()
	}()
	for {
		key, quit := g.queue.Get()
		if quit {
			return nil
		}
		if err := g.sync(); err != nil {
			klog.V(2).InfoS("gate: waiting for the controller", "reason", err)
			g.queue.AddRateLimited(key)
		} else {
			g.queue.Forget(key)
		}
		g.queue.Done(key)
	}
}

func (g *gate) table() *nftables.Table {
	return &nftables.Table{Name: gateTable, Family: nftables.TableFamilyINet}
}

func (g *gate) set() *nftables.Set {
	return &nftables.Set{Table: g.table(), Name: gateSet, KeyType: nftables.TypeIPAddr}
}

// install writes the gate's table from scratch:
//
//	table inet gkexec-netpol-gate {
//	  set ready-v4 { type ipv4_addr }
//	  chain forward { type filter hook forward priority filter - 10; iifname "<bridge>" jump pods }
//	  chain pods {
//	    meta nfproto ipv6 drop
//	    ct state established,related accept
//	    ip saddr != @ready-v4 drop
//	    ip daddr != @ready-v4 drop
//	  }
//	}
//
// The forward hook sees the bridge's traffic because br_netfilter passes bridged IP packets through
// it (the bridge's nf_call_iptables/nf_call_ip6tables, set by cluster.sh).
func (g *gate) install() error {
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	t := g.table()
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	if err := conn.AddSet(g.set(), nil); err != nil {
		return err
	}
	pods := conn.AddChain(&nftables.Chain{Name: "pods", Table: t})
	forward := conn.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)})
	ifname := make([]byte, unix.IFNAMSIZ)
	copy(ifname, g.bridge)
	conn.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: "pods"},
	}})
	rules := [][]expr.Any{
		{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
		{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		},
	}
	for _, offset := range []uint32{12, 16} { // IPv4 source, destination address
		rules = append(rules, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: gateSet, Invert: true},
			&expr.Verdict{Kind: expr.VerdictDrop},
		})
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{Table: t, Chain: pods, Exprs: r})
	}
	return conn.Flush()
}

// sync writes the set of ready addresses. It fails (to be retried) while a Pod that a policy selects
// is Running but not yet in the controller's set: that Pod stays out until the controller has it.
func (g *gate) sync() error {
	pods, err := g.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	policies, err := g.policies.List(labels.Everything())
	if err != nil {
		return err
	}
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	judged := judgedIPs(conn)
	ready, waiting := readyIPs(pods, policies, g.nodeName, judged)
	if err := g.write(conn, ready); err != nil {
		return err
	}
	g.synced.Store(true)
	if len(waiting) > 0 {
		return fmt.Errorf("not yet in the controller's set: %v", waiting)
	}
	return nil
}

// close rewrites the set for an enforcer that is about to stop: the Pods no policy selects stay
// ready, those a policy selects are taken out, since the controller's rules go with the process.
// New connections of sandboxes are dropped from then until the next start has judged them again.
func (g *gate) close() error {
	pods, err := g.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	policies, err := g.policies.List(labels.Everything())
	if err != nil {
		return err
	}
	ready, _ := readyIPs(pods, policies, g.nodeName, sets.New[string]())
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	if err := g.write(conn, ready); err != nil {
		return err
	}
	klog.InfoS("gate closed to the Pods that policies select", "ready", ready.Len())
	return nil
}

// write replaces the gate's set with ready, in one transaction: the set is never seen empty in
// between.
func (g *gate) write(conn *nftables.Conn, ready sets.Set[string]) error {
	elements := make([]nftables.SetElement, 0, ready.Len())
	for _, ip := range sets.List(ready) {
		addr, err := netip.ParseAddr(ip)
		if err != nil || !addr.Is4() {
			continue
		}
		elements = append(elements, nftables.SetElement{Key: addr.AsSlice()})
	}
	set := g.set()
	conn.FlushSet(set)
	if err := conn.SetAddElements(set, elements); err != nil {
		return err
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("writing the gate's set: %w", err)
	}
	return nil
}

// judgedIPs reads the controller's set of local Pods that policies select; empty while the
// controller has not written its table.
func judgedIPs(conn *nftables.Conn) sets.Set[string] {
	judged := sets.New[string]()
	set, err := conn.GetSetByName(&nftables.Table{Name: tableName, Family: nftables.TableFamilyINet}, controllerSet)
	if err != nil {
		return judged
	}
	elements, err := conn.GetSetElements(set)
	if err != nil {
		return judged
	}
	for _, e := range elements {
		if addr, ok := netip.AddrFromSlice(e.Key); ok {
			judged.Insert(addr.String())
		}
	}
	return judged
}

// readyIPs: the IPs of the Running Pods of node that no policy selects, or that one selects and the
// controller has judged; waiting names the Pods a policy selects that the controller has not taken in.
// A Pod that is not (or no longer) Running is never ready: its IP may be on its way to another Pod.
func readyIPs(pods []*v1.Pod, policies []*networkingv1.NetworkPolicy, node string, judged sets.Set[string]) (ready sets.Set[string], waiting []string) {
	ready = sets.New[string]()
	byNamespace := map[string][]labels.Selector{}
	for _, p := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			// The controller cannot use it either; the Pods it was meant for are not let through on
			// its account, but not held back forever either.
			continue
		}
		byNamespace[p.Namespace] = append(byNamespace[p.Namespace], sel)
	}
	for _, pod := range pods {
		if pod.Spec.NodeName != node || pod.Spec.HostNetwork || pod.Status.Phase != v1.PodRunning {
			continue
		}
		selected := false
		for _, sel := range byNamespace[pod.Namespace] {
			selected = selected || sel.Matches(labels.Set(pod.Labels))
		}
		for _, ip := range pod.Status.PodIPs {
			switch {
			case !selected || judged.Has(ip.IP):
				ready.Insert(ip.IP)
			default:
				waiting = append(waiting, pod.Namespace+"/"+pod.Name+" "+ip.IP)
			}
		}
	}
	return ready, waiting
}
