module atoll.dev/atoll/examples/bolt

go 1.26.3

require (
	atoll.dev/atoll v0.0.0
	go.etcd.io/bbolt v1.5.0
)

require golang.org/x/sys v0.50.0 // indirect

replace atoll.dev/atoll => ../..
