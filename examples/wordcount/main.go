// Command wordcount counts the words of a text corpus with a two-stage
// pipeline spread over the cluster, written with Spawn, typed channels and
// the anchor file system:
//
//	files ──shards──▶ map workers ──Chan[Counts]──▶ reduce workers ──results──▶ here
//
// Each map worker counts the words of its shard and sends every reduce
// worker the counts of the words that hash to it. Each reduce worker merges
// what all the map workers sent it and returns its totals, which this
// program merges and prints. Workers are listed in the anchor file system
// under /wordcount/RUN/map and /wordcount/RUN/reduce while they run.
//
//	go run ./examples/wordcount [-d URL] [-mappers 4] [-reducers 2] [-top 10] FILE...
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strings"
	"unicode"

	"github.com/circuit-project/circuit"
	"github.com/circuit-project/circuit/client"
)

// Counts maps words to how often they occur.
type Counts map[string]int

// words splits text into lower-case words: runs of letters, digits and
// apostrophes.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

// partition is the reduce worker responsible for a word.
func partition(word string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(word))
	return int(h.Sum32() % uint32(n))
}

// mapShard counts the words of one shard and sends each reduce worker its
// part of the counts.
func mapShard(shard string, reducers []circuit.Chan[Counts]) error {
	parts := make([]Counts, len(reducers))
	for i := range parts {
		parts[i] = Counts{}
	}
	for _, w := range words(shard) {
		parts[partition(w, len(reducers))][w]++
	}
	for i, ch := range reducers {
		if err := ch.Send(parts[i]); err != nil {
			return err
		}
	}
	return nil
}

// reduce merges the parts that every map worker sends it.
func reduce(in circuit.Chan[Counts], mappers int) (Counts, error) {
	total := Counts{}
	for i := range mappers {
		part, err := in.Recv()
		if err != nil {
			return nil, fmt.Errorf("after %d of %d map workers: %w", i, mappers, err)
		}
		for w, n := range part {
			total[w] += n
		}
	}
	return total, nil
}

func init() { circuit.Register(mapShard, reduce) }

func main() {
	circuit.Main()
	addr := flag.String("d", "", "dial-in server `URL` (default: the URL in the file $CIRCUIT names)")
	mappers := flag.Int("mappers", 4, "number of map workers")
	reducers := flag.Int("reducers", 2, "number of reduce workers")
	top := flag.Int("top", 10, "print the `N` most frequent words")
	flag.Parse()
	if *mappers < 1 || *reducers < 1 || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: wordcount [-d URL] [-mappers N] [-reducers N] [-top N] FILE...")
		os.Exit(2)
	}
	var corpus strings.Builder
	for _, f := range flag.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		corpus.Write(b)
		corpus.WriteByte('\n')
	}
	ctx := context.Background()
	c, err := circuit.ConnectEnv(ctx, *addr)
	if err != nil {
		fail(err)
	}
	total, servers, err := count(ctx, c, corpus.String(), *mappers, *reducers)
	if err != nil {
		fail(err)
	}
	report(total, servers, *top)
}

// count runs the pipeline and returns the merged counts and how many
// servers its workers ran on.
func count(ctx context.Context, c *client.Client, corpus string, mappers, reducers int) (Counts, int, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return nil, 0, err
	}
	var b [4]byte
	rand.Read(b[:])
	run := hex.EncodeToString(b[:])
	server := func(i int) string { return members[i%len(members)].ID }
	used := map[string]bool{}

	// The reduce stage first, each with a channel on its own server.
	chans := make([]circuit.Chan[Counts], reducers)
	reduceWorkers := make([]*circuit.Worker, reducers)
	defer func() {
		for _, ch := range chans {
			if ch.Path() != "" {
				ch.Scrub() // aborts a reduce worker still waiting
			}
		}
	}()
	for i := range reducers {
		at := fmt.Sprintf("/%s/wordcount-%s/reduce%d", server(i), run, i)
		if chans[i], err = circuit.MakeChan[Counts](at, mappers); err != nil {
			return nil, 0, err
		}
		if reduceWorkers[i], err = circuit.Spawn(server(i), []string{"/wordcount/" + run + "/reduce"}, reduce, chans[i], mappers); err != nil {
			return nil, 0, err
		}
		used[server(i)] = true
		fmt.Fprintf(os.Stderr, "reduce %d: worker %s on %s\n", i, reduceWorkers[i].ID(), server(i))
	}
	// The map stage, on the servers after those.
	lines := strings.SplitAfter(corpus, "\n")
	mapWorkers := make([]*circuit.Worker, mappers)
	for i := range mappers {
		shard := strings.Join(lines[i*len(lines)/mappers:(i+1)*len(lines)/mappers], "")
		host := server(reducers + i)
		if mapWorkers[i], err = circuit.Spawn(host, []string{"/wordcount/" + run + "/map"}, mapShard, shard, chans); err != nil {
			return nil, 0, err
		}
		used[host] = true
		fmt.Fprintf(os.Stderr, "map %d: worker %s on %s, %d bytes\n", i, mapWorkers[i].ID(), host, len(shard))
	}
	for _, w := range mapWorkers {
		if _, err := w.Wait(ctx); err != nil {
			return nil, 0, err
		}
	}
	total := Counts{}
	for _, w := range reduceWorkers {
		res, err := w.Wait(ctx)
		if err != nil {
			return nil, 0, err
		}
		part, ok := res[0].(Counts)
		if !ok {
			return nil, 0, errors.New("a reduce worker returned no counts")
		}
		for w, n := range part {
			total[w] += n
		}
	}
	return total, len(used), nil
}

func report(total Counts, servers, top int) {
	type wc struct {
		w string
		n int
	}
	var all []wc
	sum := 0
	for w, n := range total {
		all = append(all, wc{w, n})
		sum += n
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].w < all[j].w
	})
	fmt.Printf("%d words, %d distinct, counted on %d servers\n", sum, len(all), servers)
	for _, e := range all[:min(top, len(all))] {
		fmt.Printf("%7d %s\n", e.n, e.w)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wordcount:", err)
	os.Exit(1)
}
