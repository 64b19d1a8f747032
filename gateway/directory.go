package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
)

// Sandbox is what the gateway knows of one sandbox: who it is and how it narrows the
// namespace's allow-list.
type Sandbox struct {
	// ID names the sandbox in Stats and on the admin API: its Pod's name.
	ID string
	// Addr is the sandbox's source address (its Pod IP), if it is identified by it.
	Addr netip.Addr
	// TokenSHA256 is the hex SHA-256 of the sandbox's proxy token (see TokenHash), if it has one.
	TokenSHA256 string
	// Allow narrows the namespace's list: a destination must be allowed by both. Nil keeps the
	// namespace's list; an empty list allows nothing. Its rules' AllowPrivate is ignored: only
	// the namespace's rules decide that.
	Allow *AllowList
	// Version changes whenever what the gateway knows of the sandbox changes (the Pod's
	// resourceVersion): a runner that narrowed a Pod waits until the admin API shows it.
	Version string
}

// Directory tells the gateway which sandbox is asking. A Pod watch (PodDirectory) in
// production; a StaticDirectory in tests and for fixed setups. Lookups must be cheap: the
// gateway makes one per request.
type Directory interface {
	// ByAddr finds the sandbox whose source address is addr.
	ByAddr(addr netip.Addr) (Sandbox, bool)
	// ByTokenHash finds the sandbox whose token hashes (TokenHash) to hash.
	ByTokenHash(hash string) (Sandbox, bool)
	// ByID finds a sandbox by its ID.
	ByID(id string) (Sandbox, bool)
}

// AddrWaiter is a Directory that can wait for an address to become known: a Pod watch learns a
// new Pod's IP a moment after the Pod has it, and its code may ask first.
type AddrWaiter interface {
	// WaitAddr returns the sandbox at addr as soon as the Directory knows it, or false when ctx
	// ends first.
	WaitAddr(ctx context.Context, addr netip.Addr) (Sandbox, bool)
}

// TokenHash is the hex SHA-256 of a sandbox's proxy token: what the Directory holds (and a Pod
// annotation carries), never the token itself.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// StaticDirectory is a fixed set of sandboxes.
type StaticDirectory struct {
	byAddr  map[netip.Addr]Sandbox
	byToken map[string]Sandbox
	byID    map[string]Sandbox
}

// NewStaticDirectory indexes sandboxes; IDs, addresses and tokens must be unique.
func NewStaticDirectory(sandboxes []Sandbox) (*StaticDirectory, error) {
	d := &StaticDirectory{byAddr: map[netip.Addr]Sandbox{}, byToken: map[string]Sandbox{}, byID: map[string]Sandbox{}}
	for _, s := range sandboxes {
		if s.ID == "" {
			return nil, fmt.Errorf("%w: a sandbox without an ID", ErrInvalidOptions)
		}
		if _, dup := d.byID[s.ID]; dup {
			return nil, fmt.Errorf("%w: sandbox %q listed twice", ErrInvalidOptions, s.ID)
		}
		d.byID[s.ID] = s
		if s.Addr.IsValid() {
			a := s.Addr.Unmap()
			if other, dup := d.byAddr[a]; dup {
				return nil, fmt.Errorf("%w: sandboxes %q and %q share the address %s", ErrInvalidOptions, other.ID, s.ID, a)
			}
			d.byAddr[a] = s
		}
		if s.TokenSHA256 != "" {
			if other, dup := d.byToken[s.TokenSHA256]; dup {
				return nil, fmt.Errorf("%w: sandboxes %q and %q share a token", ErrInvalidOptions, other.ID, s.ID)
			}
			d.byToken[s.TokenSHA256] = s
		}
	}
	return d, nil
}

// ByAddr implements Directory.
func (d *StaticDirectory) ByAddr(a netip.Addr) (Sandbox, bool) {
	s, ok := d.byAddr[a.Unmap()]
	return s, ok
}

// ByTokenHash implements Directory.
func (d *StaticDirectory) ByTokenHash(h string) (Sandbox, bool) {
	s, ok := d.byToken[h]
	return s, ok
}

// ByID implements Directory.
func (d *StaticDirectory) ByID(id string) (Sandbox, bool) {
	s, ok := d.byID[id]
	return s, ok
}
