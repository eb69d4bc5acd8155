package main

// The parts of the OCI runtime specification (config.json, and the state
// a runtime reports) atoll-oci reads or writes, by the specification's
// field names (github.com/opencontainers/runtime-spec, config.md,
// config-linux.md, runtime.md).

import "time"

// spec is a bundle's config.json.
type spec struct {
	OCIVersion string            `json:"ociVersion"`
	Process    *process          `json:"process"`
	Root       *root             `json:"root"`
	Hostname   string            `json:"hostname"`
	Mounts     []mount           `json:"mounts"`
	Linux      *linux            `json:"linux"`
	Annots     map[string]string `json:"annotations"`
}

type process struct {
	Terminal bool     `json:"terminal"`
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Cwd      string   `json:"cwd"`
}

type root struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type mount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options"`
}

type linux struct {
	Namespaces []namespace `json:"namespaces"`
	Resources  *resources  `json:"resources"`
}

type namespace struct {
	Type string `json:"type"`
	Path string `json:"path"`
}

type resources struct {
	Memory *struct {
		Limit *int64 `json:"limit"`
	} `json:"memory"`
	CPU *struct {
		Quota  *int64  `json:"quota"`
		Period *uint64 `json:"period"`
		Cpus   string  `json:"cpus"`
	} `json:"cpu"`
}

// ociState is what the state command prints (runtime.md, "State").
type ociState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"` // creating, created, running, stopped
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// runc's own fields, which engines read too.
	Created time.Time `json:"created"`
}
