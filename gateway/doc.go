// Package gateway is gkexec's egress gateway: the forward proxy through which sandboxes reach
// the few destinations their namespace allows, and which puts credentials into their requests
// so that the credentials never enter a sandbox.
//
// A sandbox sends plain HTTP as absolute-URI requests and HTTPS through CONNECT
// (HTTP_PROXY/HTTPS_PROXY). The gateway
//   - identifies the sandbox by its source address or its proxy token (Directory: a Pod watch
//     in production, PodDirectory);
//   - allows a destination only when the namespace's allow-list (Options.Allow) and the
//     sandbox's own narrowing (Sandbox.Allow) both allow its host and port;
//   - resolves names itself and refuses loopback, private, link-local (the metadata server)
//     and reserved addresses unless a rule allows private ones, and its own listeners always;
//   - checks that a tunnel's TLS ClientHello names the CONNECT host, then passes the tunnel
//     through untouched, except for hosts secrets are bound to (Options.Secrets): those it
//     intercepts with a leaf certificate from the namespace's CA, replaces the placeholder
//     gkexec-secret:NAME with the secret's value in the request headers, and scrubs the value
//     from the response.
//
// Every refusal is an answer the code can read: 403 with the reason in the X-Gkexec-Denied
// header and a one-line body, before any tunnel opens. Per-sandbox counts of allowed and
// denied destinations, and Prometheus metrics, are on the admin API (AdminHandler), which
// sandboxes must not reach.
//
// See README.md for the threat model, the trade-offs of interception, and why the standard
// library rather than a proxy library.
package gateway
