// Package emulated tests Atoll on hypervisors this machine does not have,
// under QEMU's full emulation: TestEmulatedSVM boots unikernels on Linux's
// kvm_amd inside an emulated AMD CPU with SVM, the hardware exit path.
// It is slow and needs Debian's kernel, qemu-system-x86 and busybox-static,
// so it is built only with a tag; .ci/run runs it:
//
//	go test -tags svm -count=1 ./internal/emulated
package emulated
