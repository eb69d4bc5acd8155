// Package manifest reads a unikernel's manifest: its name, the devices it
// needs and its run-time defaults. The monitor attaches exactly the devices
// a manifest declares (least privilege by declaration, as Solo5's manifest
// and Mirage's device graph do).
//
// The format is line-oriented like go.mod (docs/manifest.md):
//
//	// The hello-web unikernel.
//	unikernel hello-web
//	memory 256M
//	cpus 2
//	env GREETING=hello
//	net service
//	block data 64M 4096
//
// Repeated directives may also be grouped, one entry per line:
//
//	net (
//		service
//		admin
//	)
//
// Errors name the file, the line and the field.
package manifest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"atoll.dev/atoll/abi"
)

// FileName is the manifest's name in a package directory.
const FileName = "atoll.manifest"

// MaxSize bounds a manifest file.
const MaxSize = 64 << 10

// Device kinds, as manifests name them.
const (
	Net    = abi.KindNet
	Block  = abi.KindBlock
	Volume = abi.KindVolume
)

// Device is one declared device.
type Device struct {
	Name string
	Kind abi.Kind
	// Spec holds the kind's parameters (BlockSpec for block devices); nil
	// for kinds that have none.
	Spec Spec
}

// Spec is the parameters of one kind of device, declared after its name.
type Spec interface {
	// String describes the parameters for people (atoll inspect).
	String() string
	// validate checks parameters that did not come from the parser.
	validate() error
}

// kind is how a manifest declares one device kind: `KIND NAME ARGS...`.
// Each kind registers itself from its own file (block.go, net.go).
type kind struct {
	usage   string // e.g. "block NAME SIZE [SECTOR-SIZE]"
	minArgs int    // arguments after NAME
	maxArgs int
	// parse makes the kind's Spec from the arguments after NAME; its
	// errors are messages for the manifest's author.
	parse func(name string, args []string) (Spec, error)
	// spec returns an empty Spec to decode JSON into; nil when the kind
	// has no parameters.
	spec func() Spec
}

// kinds are the device kinds by name.
var kinds = map[abi.Kind]kind{}

func registerKind(k abi.Kind, d kind) { kinds[k] = d }

// deviceJSON is a Device as images store it: the Spec's fields sit
// beside name and kind, so a kind's parameters are its own.
type deviceJSON struct {
	Name string   `json:"name"`
	Kind abi.Kind `json:"kind"`
}

// MarshalJSON encodes d with its Spec's fields inline.
func (d Device) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(deviceJSON{d.Name, d.Kind})
	if err != nil || d.Spec == nil {
		return head, err
	}
	spec, err := json.Marshal(d.Spec)
	if err != nil {
		return nil, err
	}
	if len(spec) <= 2 { // {}
		return head, nil
	}
	return append(append(head[:len(head)-1:len(head)-1], ','), spec[1:]...), nil
}

// UnmarshalJSON decodes a Device, its Spec by its kind.
func (d *Device) UnmarshalJSON(b []byte) error {
	var h deviceJSON
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	k, ok := kinds[h.Kind]
	if !ok {
		return fmt.Errorf("device %q has unknown kind %q", h.Name, h.Kind)
	}
	*d = Device{Name: h.Name, Kind: h.Kind}
	if k.spec != nil {
		d.Spec = k.spec()
		if err := json.Unmarshal(b, d.Spec); err != nil {
			return fmt.Errorf("device %q: %w", h.Name, err)
		}
	}
	return nil
}

// Describe returns d's parameters for people, "" for a kind without any.
func (d Device) Describe() string {
	if d.Spec == nil {
		return ""
	}
	return d.Spec.String()
}

// Manifest is a parsed, validated manifest.
type Manifest struct {
	Name    string   `json:"name"`
	Memory  uint64   `json:"memory"` // bytes
	CPUs    int      `json:"cpus"`
	Env     []string `json:"env,omitempty"` // KEY=VALUE
	Devices []Device `json:"devices,omitempty"`
	// Files are packed into the image's read-only tree (files.go).
	Files []FilesEntry `json:"files,omitempty"`
	// TZData builds the program with Go's embedded time-zone database
	// (the timetzdata tag); CACerts packs the build host's CA bundle. An
	// image records what it was built with; older images have neither.
	TZData  bool `json:"tzdata"`
	CACerts bool `json:"cacerts"`
}

// Defaults for what a manifest leaves out.
const (
	DefaultMemory = 512 << 20
	DefaultCPUs   = 1
	MaxDevices    = 64
	MinMemory     = 32 << 20
	MaxCPUs       = 64
)

// Default returns the manifest of a package that has none: named name,
// no devices.
func Default(name string) *Manifest {
	return &Manifest{Name: name, Memory: DefaultMemory, CPUs: DefaultCPUs, TZData: true, CACerts: true}
}

// Device returns the declared device called name.
func (m *Manifest) Device(name string) (Device, bool) {
	for _, d := range m.Devices {
		if d.Name == name {
			return d, true
		}
	}
	return Device{}, false
}

// Error is a problem at a place in a manifest file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads the manifest in data; file names it in errors.
func Parse(file string, data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &Error{file, 1, fmt.Sprintf("manifest is %d bytes, more than the %d allowed", len(data), MaxSize)}
	}
	m := &Manifest{Memory: DefaultMemory, CPUs: DefaultCPUs, TZData: true, CACerts: true}
	p := &parser{file: file, m: m, seen: map[string]int{}}
	lines, err := splitLines(file, string(data))
	if err != nil {
		return nil, err
	}
	var block string // directive of the open ( ... ) group
	blockLine := 0
	for _, l := range lines {
		f := l.fields
		switch {
		case block != "" && len(f) == 1 && f[0] == ")":
			block = ""
			continue
		case block != "":
			if err := p.directive(l.n, block, f); err != nil {
				return nil, err
			}
			continue
		case len(f) == 2 && f[1] == "(":
			if !groupable(f[0]) {
				return nil, p.errorf(l.n, "%q cannot be grouped with ( ... )", f[0])
			}
			block, blockLine = f[0], l.n
			continue
		}
		if err := p.directive(l.n, f[0], f[1:]); err != nil {
			return nil, err
		}
	}
	if block != "" {
		return nil, p.errorf(blockLine, "%s ( is never closed", block)
	}
	if m.Name == "" {
		return nil, p.errorf(max(1, p.lastLine), "missing the unikernel directive (e.g. `unikernel hello-web`)")
	}
	return m, nil
}

// groupable reports whether directive verb may be grouped with ( ... ):
// env, files and the device kinds.
func groupable(verb string) bool {
	_, device := kinds[abi.Kind(verb)]
	return verb == "env" || verb == "files" || device
}

type parser struct {
	file     string
	m        *Manifest
	seen     map[string]int // single directives: line first seen
	lastLine int
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return &Error{p.file, line, fmt.Sprintf(format, args...)}
}

func (p *parser) once(line int, verb string) error {
	if first, dup := p.seen[verb]; dup {
		return p.errorf(line, "%s given twice (first on line %d)", verb, first)
	}
	p.seen[verb] = line
	return nil
}

func (p *parser) args(line int, args []string, lo, hi int, usage string) error {
	if len(args) < lo || len(args) > hi {
		return p.errorf(line, "usage: %s", usage)
	}
	return nil
}

// directive applies one directive with its arguments.
func (p *parser) directive(line int, verb string, args []string) error {
	p.lastLine = line
	m := p.m
	switch verb {
	case "unikernel":
		if err := p.args(line, args, 1, 1, "unikernel NAME"); err != nil {
			return err
		}
		if err := p.once(line, verb); err != nil {
			return err
		}
		if !ValidName(args[0]) {
			return p.errorf(line, "unikernel name %q must be %s", args[0], NameRule)
		}
		m.Name = args[0]
	case "memory":
		if err := p.args(line, args, 1, 1, "memory SIZE (e.g. 256M)"); err != nil {
			return err
		}
		if err := p.once(line, verb); err != nil {
			return err
		}
		n, err := ParseSize(args[0])
		if err != nil || n < MinMemory {
			return p.errorf(line, "memory %q must be a size of at least 32M (e.g. 256M, 1G)", args[0])
		}
		m.Memory = n
	case "cpus":
		if err := p.args(line, args, 1, 1, "cpus N"); err != nil {
			return err
		}
		if err := p.once(line, verb); err != nil {
			return err
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > MaxCPUs {
			return p.errorf(line, "cpus %q must be a number from 1 to %d", args[0], MaxCPUs)
		}
		m.CPUs = n
	case "env":
		if err := p.args(line, args, 1, 1, "env KEY=VALUE"); err != nil {
			return err
		}
		k, _, ok := strings.Cut(args[0], "=")
		if !ok || !ValidEnvKey(k) {
			return p.errorf(line, "env %q must be KEY=VALUE with KEY of [A-Za-z0-9_], not starting with a digit", args[0])
		}
		if strings.HasPrefix(k, abi.ReservedEnvPrefix) {
			return p.errorf(line, "env %s: names starting with %s are atoll's own", k, abi.ReservedEnvPrefix)
		}
		for _, e := range m.Env {
			if strings.HasPrefix(e, k+"=") {
				return p.errorf(line, "env %s given twice", k)
			}
		}
		m.Env = append(m.Env, args[0])
	case "files":
		return p.parseFiles(line, args)
	case "tzdata":
		return p.parseSwitch(line, verb, args, &m.TZData)
	case "cacerts":
		return p.parseSwitch(line, verb, args, &m.CACerts)
	default:
		k, ok := kinds[abi.Kind(verb)]
		if !ok {
			return p.errorf(line, "unknown directive %q (want unikernel, memory, cpus, env, files, tzdata, cacerts or a device kind: %s)", verb, kindList())
		}
		if err := p.args(line, args, 1+k.minArgs, 1+k.maxArgs, k.usage); err != nil {
			return err
		}
		d := Device{Name: args[0], Kind: abi.Kind(verb)}
		if !ValidName(d.Name) {
			return p.errorf(line, "%s device name %q must be %s", d.Kind, d.Name, NameRule)
		}
		spec, err := k.parse(d.Name, args[1:])
		if err != nil {
			return p.errorf(line, "%v", err)
		}
		d.Spec = spec
		return p.addDevice(line, d)
	}
	return nil
}

// kindList names the device kinds, for messages.
func kindList() string {
	var l []string
	for k := range kinds {
		l = append(l, string(k))
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}

func (p *parser) addDevice(line int, d Device) error {
	if _, dup := p.m.Device(d.Name); dup {
		return p.errorf(line, "device name %q declared twice", d.Name)
	}
	if len(p.m.Devices) >= MaxDevices {
		return p.errorf(line, "more than %d devices", MaxDevices)
	}
	p.m.Devices = append(p.m.Devices, d)
	return nil
}

// Validate checks a manifest that did not come from Parse (one decoded
// from an image, say) against the same rules.
func (m *Manifest) Validate() error {
	switch {
	case !ValidName(m.Name):
		return fmt.Errorf("unikernel name %q must be %s", m.Name, NameRule)
	case m.Memory < MinMemory || m.Memory > 1<<40:
		return fmt.Errorf("memory %d out of range", m.Memory)
	case m.CPUs < 1 || m.CPUs > MaxCPUs:
		return fmt.Errorf("cpus %d out of range", m.CPUs)
	case len(m.Devices) > MaxDevices:
		return fmt.Errorf("more than %d devices", MaxDevices)
	}
	for _, e := range m.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || !ValidEnvKey(k) || strings.HasPrefix(k, abi.ReservedEnvPrefix) {
			return fmt.Errorf("env %q is not KEY=VALUE", e)
		}
	}
	if err := validateFiles(m.Files); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range m.Devices {
		if !ValidName(d.Name) || seen[d.Name] {
			return fmt.Errorf("device name %q invalid or repeated", d.Name)
		}
		seen[d.Name] = true
		k, ok := kinds[d.Kind]
		switch {
		case !ok:
			return fmt.Errorf("device %s has unknown kind %q", d.Name, d.Kind)
		case (k.spec == nil) != (d.Spec == nil):
			return fmt.Errorf("%s device %s: parameters %v do not fit its kind", d.Kind, d.Name, d.Spec)
		case d.Spec != nil:
			if err := d.Spec.validate(); err != nil {
				return fmt.Errorf("%s device %s: %w", d.Kind, d.Name, err)
			}
		}
	}
	return nil
}

// NameRule describes what ValidName accepts, for error messages.
const NameRule = "1–63 of [a-z0-9-], starting with a letter"

// ValidName reports whether s can name a unikernel or a device: 1–63 of
// [a-z0-9-], starting with a letter (a DNS label, usable as a host name).
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidEnvKey reports whether k can name an environment variable:
// [A-Za-z0-9_], not starting with a digit.
func ValidEnvKey(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ParseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024; "MiB" and "MB" are read the same).
func ParseSize(v string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "IB"), "B")
	mult := uint64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("invalid size %q (want e.g. 512M or 2G)", v)
	}
	return n * mult, nil
}

// FormatSize prints a byte count the way ParseSize reads it.
func FormatSize(n uint64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.FormatUint(n, 10)
}

type line struct {
	n      int
	fields []string
}

// splitLines tokenizes the file: fields separated by blanks, `//` comments,
// Go-quoted strings, and a lone "(" or ")" as its own field.
func splitLines(file, s string) ([]line, error) {
	var out []line
	for i, raw := range strings.Split(s, "\n") {
		n := i + 1
		var fields []string
		rest := strings.TrimRight(raw, "\r")
		for {
			rest = strings.TrimLeft(rest, " \t")
			if rest == "" || strings.HasPrefix(rest, "//") {
				break
			}
			if rest[0] == '"' || rest[0] == '`' {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return nil, &Error{file, n, "unterminated quoted string"}
				}
				v, _ := strconv.Unquote(q)
				fields = append(fields, v)
				rest = rest[len(q):]
				continue
			}
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			tok := rest[:end]
			if c := strings.Index(tok, "//"); c > 0 {
				tok, end = tok[:c], c
			}
			fields = append(fields, tok)
			rest = rest[end:]
		}
		for _, f := range fields {
			// Manifests travel in images as JSON, which cannot carry
			// other bytes: a path or value would change on the way.
			if !utf8.ValidString(f) {
				return nil, &Error{file, n, fmt.Sprintf("%q is not valid UTF-8", f)}
			}
		}
		if len(fields) > 0 {
			out = append(out, line{n, fields})
		}
	}
	return out, nil
}
