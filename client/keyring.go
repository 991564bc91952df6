package client

import (
	"context"

	"github.com/circuit-project/circuit/internal/api"
)

// KeyInfo is one key of a server's keyring: its ID (a fingerprint that
// tells keys apart without revealing them) and whether it is the one in
// use, which signs, presents and encrypts; every installed key is accepted.
type KeyInfo struct {
	ID    string
	InUse bool
}

// The actions of Keyring.
const (
	KeyringList    = "list"
	KeyringInstall = "install" // key: the key's text, as key files hold it
	KeyringUse     = "use"     // id: an installed key's ID
	KeyringRemove  = "remove"  // id: an installed key's ID, not the one in use
)

// Keyring lists or changes the keyring of the server with the given ID:
// action is one of KeyringList, KeyringInstall (with key), KeyringUse or
// KeyringRemove (with id). It returns the ring afterwards, the key in use
// first, and whether the action changed it. It needs role admin. Rotating a
// cluster's key is install, use and remove, each on every server before
// the next (circuit keyring).
func (c *Client) Keyring(ctx context.Context, server, action string, key []byte, id string) ([]KeyInfo, bool, error) {
	sc, err := c.server(server)
	if err != nil {
		return nil, false, err
	}
	rep, err := sc.api.Keyring(ctx, &api.KeyringRequest{Action: action, Key: key, Id: id})
	if err != nil {
		return nil, false, c.wrap(ctx, sc, err)
	}
	var out []KeyInfo
	for _, k := range rep.GetKeys() {
		out = append(out, KeyInfo{ID: k.GetId(), InUse: k.GetInUse()})
	}
	return out, rep.GetChanged(), nil
}
