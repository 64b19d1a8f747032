package gateway

// decide judges a target for a sandbox: the namespace's list must allow it, and so must the
// sandbox's own list when it narrows the namespace's (intersection: a sandbox can narrow,
// never widen). It judges the name and port only; the addresses a name resolves to are judged
// when the gateway dials (dialer.resolve).
func (g *Gateway) decide(sb Sandbox, t target) *denial {
	r, hostKnown := g.allow.match(t)
	if r == nil {
		switch {
		case hostKnown:
			return deny(ReasonPortNotAllowed, "%s is allowed on other ports than %d", t.host(), t.port)
		case t.isIP():
			return deny(ReasonRawIP, "%s is an IP address no rule names; use the host's name", t.host())
		}
		return deny(ReasonNotAllowed, "%s is not on this namespace's allow-list", t.host())
	}
	if sb.Allow != nil {
		if n, _ := sb.Allow.match(t); n == nil {
			return deny(ReasonNarrowed, "%s is not on this sandbox's allow-list (the namespace's allows it)", t)
		}
	}
	return nil
}
