package oplog

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// SyncEvery is how often the audit file is synced to its disk while records
// are being written.
const SyncEvery = time.Second

// Audit is the audit file: every record as one JSON line, appended.
//
// The sync policy: each record is one write(2) to a file opened for
// appending, made before the operation's effect is visible (before a
// process starts, before an answer is sent). Once write returns, the record
// is the kernel's, so a kill -9 of the server loses no record written. The
// file is synced (fsync) at most SyncEvery after a write, and when the
// server stops, so a crash of the machine itself loses at most the last
// second's records. Syncing every record would put a disk flush, a
// millisecond or more, inside every operation.
type Audit struct {
	path string
	f    *os.File

	mu    sync.Mutex
	buf   []byte
	dirty bool
	stop  chan struct{}
	done  chan struct{}
}

// OpenAudit opens (creating, mode 600) the audit file at path for
// appending, and starts its syncer; Close stops it.
func OpenAudit(path string) (*Audit, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-audit: %w", err)
	}
	a := &Audit{path: path, f: f, stop: make(chan struct{}), done: make(chan struct{})}
	go a.syncLoop()
	return a, nil
}

// Path is the file's path.
func (a *Audit) Path() string { return a.path }

// write appends one record, whole, in one write.
func (a *Audit) write(rec Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, err := json.Marshal(rec)
	if err != nil {
		// A What value that does not marshal: keep the record, without it.
		rec.What = map[string]any{"unencodable": err.Error()}
		if b, err = json.Marshal(rec); err != nil {
			return err
		}
	}
	a.buf = append(append(a.buf[:0], b...), '\n')
	if _, err := a.f.Write(a.buf); err != nil {
		return err
	}
	a.dirty = true
	return nil
}

func (a *Audit) syncLoop() {
	defer close(a.done)
	t := time.NewTicker(SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.sync()
		}
	}
}

func (a *Audit) sync() error {
	a.mu.Lock()
	dirty := a.dirty
	a.dirty = false
	a.mu.Unlock()
	if !dirty {
		return nil
	}
	return a.f.Sync()
}

// Close stops the syncer, syncs the file and closes it.
func (a *Audit) Close() error {
	close(a.stop)
	<-a.done
	err := a.sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}
