package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/gkexec/gkexec/gateway"
)

// A gateway that lets one sandbox reach one host. The "internet" is a server on loopback under
// a name the gateway's hosts map resolves.
func Example() {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "hello from the mirror")
	}))
	defer site.Close()
	_, portText, _ := net.SplitHostPort(site.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)

	dir, _ := gateway.NewStaticDirectory([]gateway.Sandbox{{ID: "sandbox-1", Addr: netip.MustParseAddr("127.0.0.1")}})
	gw, err := gateway.New(gateway.Options{
		Allow:     []gateway.Rule{{Host: "mirror.test", Ports: []int{port}, AllowPrivate: true}},
		Directory: dir,
		Resolver:  gateway.HostsResolver{"mirror.test": {netip.MustParseAddr("127.0.0.1")}},
	})
	if err != nil {
		panic(err)
	}
	proxy, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- gw.Serve(ctx, proxy, nil) }()

	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxy.Addr().String()})}}
	for _, u := range []string{"http://mirror.test:" + portText + "/", "http://elsewhere.test/"} {
		resp, err := client.Get(u)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s %s", resp.StatusCode, resp.Header.Get(gateway.HeaderDenied), body)
	}
	stop()
	<-done
	// Output:
	// 200  hello from the mirror
	// 403 not-allowed gkexec gateway: denied: elsewhere.test is not on this namespace's allow-list (not-allowed)
}
