package difftest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Result is the outcome of one query sent to both servers.
type Result struct {
	// Query is the query.
	Query Query
	// TCP is whether it went over TCP.
	TCP bool
	// Want and Got are the reference server's response and the
	// other's, nil for none.
	Want, Got *dns.Msg
	// Findings are the differences between them, judged.
	Findings []Finding
}

// Unexplained returns the findings no allowance covers.
func (r Result) Unexplained() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Allowance == nil {
			out = append(out, f)
		}
	}
	return out
}

// Run sends each of queries to the reference server at wantAddr and to
// the other at gotAddr, over TCP if tcp, else UDP, and judges the
// responses with allowances (see [Judge]). Besides the [Differences] of
// the two responses, a finding is:
//   - a server's failure other than not answering (the connection
//     refused, a response that does not unpack): Section "response",
//     Field "error", and then no other finding for the query;
//   - the other server's UDP response longer than the query allows
//     ([UDPLimit]): Section "response", Field "size".
//
// Queries go eight at a time; the results are in the order of queries.
func Run(queries []Query, wantAddr, gotAddr string, tcp bool, allowances []Allowance) []Result {
	results := make([]Result, len(queries))
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				results[i] = runOne(queries[i], wantAddr, gotAddr, tcp, allowances)
			}
		})
	}
	for i := range queries {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// runOne is [Run] for one query.
func runOne(q Query, wantAddr, gotAddr string, tcp bool, allowances []Allowance) Result {
	r := Result{Query: q, TCP: tcp}
	var extra []Difference
	failed := false
	get := func(addr, who string) *dns.Msg {
		b, err := ExchangeWire(addr, q.Msg, tcp)
		if errors.Is(err, ErrNoResponse) {
			return nil
		}
		if err == nil {
			m := new(dns.Msg)
			if err = m.Unpack(b); err == nil {
				if who == "got" && !tcp && len(b) > UDPLimit(q.Msg) {
					extra = append(extra, Difference{Section: "response", Field: "size",
						Want: fmt.Sprintf("at most %d octets", UDPLimit(q.Msg)), Got: fmt.Sprintf("%d octets", len(b))})
				}
				return m
			}
			err = fmt.Errorf("unpacking the %d-octet response: %w", len(b), err)
		}
		failed = true
		d := Difference{Section: "response", Field: "error"}
		if who == "want" {
			d.Want = err.Error()
		} else {
			d.Got = err.Error()
		}
		extra = append(extra, d)
		return nil
	}
	r.Want = get(wantAddr, "want")
	r.Got = get(gotAddr, "got")
	for _, d := range extra {
		r.Findings = append(r.Findings, judge(q.Msg, r.Want, r.Got, d, allowances))
	}
	if !failed {
		r.Findings = append(r.Findings, Judge(q.Msg, r.Want, r.Got, allowances)...)
	}
	return r
}

// judge returns d judged with allowances.
func judge(q, want, got *dns.Msg, d Difference, allowances []Allowance) Finding {
	for i := range allowances {
		if allowances[i].Allows(q, want, got, d) {
			return Finding{Difference: d, Allowance: &allowances[i]}
		}
	}
	return Finding{Difference: d}
}

// Report sums up results: the differences no allowance covers first,
// then those each allowance covers, by category ([Difference.Category]),
// with a few examples of each.
type Report struct {
	mu        sync.Mutex
	groups    map[*Allowance]*group
	queries   int
	differing int
}

// group is the differences one allowance covers, or none does, in a
// [Report].
type group struct {
	allowance  *Allowance
	queries    int // with one or more differences in the group
	last       string
	categories map[string]*category
}

// category is one kind of difference in a [group].
type category struct {
	name     string
	count    int // differences
	queries  int // queries with one or more
	last     string
	examples []string
}

// examplesPerCategory is how many examples a [Report] keeps of each
// category.
const examplesPerCategory = 2

// Add adds results to the report.
func (rep *Report) Add(results ...Result) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.groups == nil {
		rep.groups = map[*Allowance]*group{}
	}
	for _, r := range results {
		rep.queries++
		if len(r.Findings) > 0 {
			rep.differing++
		}
		id := r.Query.Name + " " + transport(r.TCP)
		for _, f := range r.Findings {
			g := rep.groups[f.Allowance]
			if g == nil {
				g = &group{allowance: f.Allowance, categories: map[string]*category{}}
				rep.groups[f.Allowance] = g
			}
			if g.last != id {
				g.queries++
				g.last = id
			}
			c := g.categories[f.Category()]
			if c == nil {
				c = &category{name: f.Category()}
				g.categories[f.Category()] = c
			}
			c.count++
			if c.last != id {
				c.queries++
				c.last = id
				if len(c.examples) < examplesPerCategory {
					c.examples = append(c.examples, fmt.Sprintf("[%s] %s", id, f.Difference))
				}
			}
		}
	}
}

// Unexplained returns the number of queries with differences no
// allowance covers.
func (rep *Report) Unexplained() int {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if g := rep.groups[nil]; g != nil {
		return g.queries
	}
	return 0
}

// String returns the report: the differences no allowance covers, then
// each allowance's, most queries first; in each, one line per category
// with the number of queries and of differences, and examples.
func (rep *Report) String() string {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	var gs []*group
	for _, g := range rep.groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *group) int {
		switch {
		case a.allowance == nil:
			return -1
		case b.allowance == nil:
			return 1
		case a.queries != b.queries:
			return b.queries - a.queries
		}
		return strings.Compare(a.allowance.Name, b.allowance.Name)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d queries, %d with differences\n", rep.queries, rep.differing)
	for _, g := range gs {
		if g.allowance == nil {
			fmt.Fprintf(&b, "NOT ALLOWED: %d queries\n", g.queries)
		} else {
			fmt.Fprintf(&b, "allowed, %s (%s): %d queries\n", g.allowance.Name, g.allowance.RFC, g.queries)
		}
		var cs []*category
		for _, c := range g.categories {
			cs = append(cs, c)
		}
		slices.SortFunc(cs, func(a, b *category) int {
			if a.queries != b.queries {
				return b.queries - a.queries
			}
			return strings.Compare(a.name, b.name)
		})
		for _, c := range cs {
			fmt.Fprintf(&b, "  %5d queries %5d differences: %s\n", c.queries, c.count, c.name)
			for _, e := range c.examples {
				fmt.Fprintf(&b, "        e.g. %s\n", e)
			}
		}
	}
	return b.String()
}
