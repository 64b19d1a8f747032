package gateway

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
)

// identify finds the sandbox that sent r: by its Proxy-Authorization token when it sends one
// (and then the source address, if it is a known sandbox's, must be the same sandbox's: a
// token copied into another sandbox is refused), else by its source address, waiting up to
// IdentifyWait for a Directory that can (AddrWaiter) to learn an address it does not know yet.
func (g *Gateway) identify(r *http.Request) (Sandbox, *denial) {
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	addr := src.Addr().Unmap()
	byAddr, addrKnown := g.dir.ByAddr(addr)
	header := r.Header.Get("Proxy-Authorization")
	if w, ok := g.dir.(AddrWaiter); ok && !addrKnown && header == "" && !g.opts.RequireToken {
		ctx, cancel := context.WithTimeout(r.Context(), g.opts.IdentifyWait)
		byAddr, addrKnown = w.WaitAddr(ctx, addr)
		cancel()
	}
	token, ok := proxyToken(header)
	if header != "" && !ok {
		return Sandbox{}, deny(ReasonBadToken, "Proxy-Authorization must be Basic (a proxy URL's user:token) or Bearer")
	}
	if header == "" {
		switch {
		case g.opts.RequireToken:
			return Sandbox{}, deny(ReasonUnknownSandbox, "this gateway identifies sandboxes by token, and the request has no Proxy-Authorization")
		case !addrKnown:
			return Sandbox{}, deny(ReasonUnknownSandbox, "%s is not a sandbox this gateway knows", addr)
		}
		return byAddr, nil
	}
	byToken, ok := g.dir.ByTokenHash(TokenHash(token))
	if !ok {
		return Sandbox{}, deny(ReasonBadToken, "the Proxy-Authorization token is no sandbox's")
	}
	if addrKnown && byAddr.ID != byToken.ID {
		return Sandbox{}, deny(ReasonIdentityMismatch, "the token is not the token of the sandbox at %s", addr)
	}
	return byToken, nil
}

// proxyToken reads the token from "Basic base64(user:token)" (what clients send for a proxy
// URL http://user:token@gateway:3128; the user name is ignored) or "Bearer token".
func proxyToken(header string) (string, bool) {
	scheme, value, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok {
		return "", false
	}
	value = strings.TrimSpace(value)
	switch strings.ToLower(scheme) {
	case "bearer":
		return value, value != ""
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return "", false
		}
		user, pass, _ := strings.Cut(string(raw), ":")
		if pass == "" {
			pass = user
		}
		return pass, pass != ""
	}
	return "", false
}
