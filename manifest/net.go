package manifest

import "atoll.dev/atoll/abi"

// A network device has no parameters: `net NAME`. How it reaches a
// network is the operator's choice at run time (atoll run --net).
func init() {
	registerKind(abi.KindNet, kind{
		usage: "net NAME",
		parse: func(string, []string) (Spec, error) { return nil, nil },
	})
}
