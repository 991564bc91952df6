// Package safefile owns replacing a file whole: the state files a server
// keeps in -var (the revocation list, the keyring) and the credential files
// of its processes are written under a temporary name, synced, and renamed
// over the old one, so that a reader, or a restart after a crash, finds
// either the old contents or the new, never a part.
package safefile

import (
	"fmt"
	"os"
)

// Write replaces the file at path with b, whole, with the given mode.
func Write(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
