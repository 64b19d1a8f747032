package main

import "github.com/urfave/cli/v2"

const flagAllowDomain = "allow-domain"

// allowDomainFlag narrows the namespace's egress allow-list (runner Request.AllowDomains,
// SessionOptions.AllowDomains); the runner checks the entries.
func allowDomainFlag(what string) cli.Flag {
	return &cli.StringSliceFlag{Name: flagAllowDomain, Usage: "let " + what + " reach only this `HOST[:PORT]` (a name or *.domain; repeatable) of what the namespace's egress gateway allows: narrows the namespace's list, never widens it"}
}
