package monitor

import (
	"encoding/binary"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/framering"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/vfs"
	"atoll.dev/atoll/netpolicy"
)

// FuzzSyscall drives the whole system-call table in-process, as a hostile
// guest would: arbitrary calls with arbitrary arguments over arbitrary
// guest memory, and arbitrary CPU exceptions, on a VM with a block and a
// network device, a volume (files to lock and map shared) and host
// sockets. Whatever happens, the monitor must not panic, must keep
// the guest within its memory limit and descriptor table, and must leave
// no host descriptor behind when the VM is closed.
//
// An input is the scratch memory's first bytes, then operations: one byte
// picks a table entry (or, at 255, a CPU exception), then each of six
// arguments is a selector byte and its value (see fuzzArg). The VM is
// marked as ending before the calls, so blocking calls give up at once.
func FuzzSyscall(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f.Fatal(err)
	}
	defer devnull.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		before := hostFDs(t)
		disk := blockFile(t, 64<<10)
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		guest := os.NewFile(uintptr(pair[0]), "guest")
		vol, err := os.Open(t.TempDir()) // the volume /data: files to lock and map shared
		if err != nil {
			t.Fatal(err)
		}
		tv := newTestVM(t, vmOptions{console: devnull, mem: 64 << 20, devices: []Device{
			{Device: manifest.Device{Name: "data", Kind: abi.KindBlock, Spec: &manifest.BlockSpec{Size: 64 << 10, SectorSize: 512}}, File: disk},
			{Device: manifest.Device{Name: "net", Kind: abi.KindNet}, File: guest},
		}, hostNet: &HostNet{Outbound: netpolicy.OutboundNone}, // sockets, which reach nothing beyond the guest
			volumes: []vfs.Volume{{Path: "/data", Dir: vol}}})
		guest.Close()
		vol.Close()
		tv.exit(-1)
		in := fuzzInput{data: data}
		copy(tv.bytes(t, tv.scratch, scratchSize), in.take(min(len(data)/2, 4096)))
		for calls := 0; calls < 64 && len(in.data) > 0; calls++ {
			op := in.byte()
			if op == 255 {
				c := tv.main.cpu.(*fakeCPU)
				c.regs.RIP = in.u64()
				c.events.Exception.Nr = in.byte()
				c.events.Exception.ErrorCode = uint32(in.u64())
				c.sregs.CR2 = in.u64()
				tv.main.fault()
				continue
			}
			s := syscallTable[int(op)%len(syscallTable)]
			var a [6]uint64
			for i := range a {
				a[i] = in.arg(tv)
			}
			tv.sys(tv.main, s.nr, a[:]...)
		}
		if c, l := tv.VM.mem.Committed(), tv.VM.mem.Limit(); c > l {
			t.Fatalf("guest holds %d bytes, over its limit of %d", c, l)
		}
		if n := tv.fds.count(); n > maxFDs {
			t.Fatalf("%d descriptors", n)
		}
		tv.close()
		unix.Close(pair[1])
		disk.Close()
		if left := newFDs(t, before); len(left) > 0 {
			t.Fatalf("host descriptors left behind: %v", left)
		}
	})
}

// fuzzInput consumes a fuzzer's bytes; past the end it reads zeros.
type fuzzInput struct{ data []byte }

func (in *fuzzInput) take(n int) []byte {
	n = min(n, len(in.data))
	b := in.data[:n]
	in.data = in.data[n:]
	return b
}

func (in *fuzzInput) byte() uint8 {
	if b := in.take(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (in *fuzzInput) u64() uint64 {
	var b [8]byte
	copy(b[:], in.take(8))
	return binary.LittleEndian.Uint64(b[:])
}

// arg reads one argument: a selector byte, then a small number, an
// address in the scratch memory, a raw word, or an interesting value.
func (in *fuzzInput) arg(tv *testVM) uint64 {
	switch sel := in.byte(); sel % 4 {
	case 0:
		return uint64(in.byte())
	case 1:
		return tv.scratch + (uint64(in.byte())<<8|uint64(in.byte()))*16%scratchSize
	case 2:
		return in.u64()
	default:
		special := []uint64{0, wild, 1 << 62, ^uint64(0), uint64(tv.stackTop) - 8, uint64(trampolineAddr),
			uint64(sigTableAddr), 0x400000, 1 << 32, maxFDs - 1, 1 << 31}
		return special[int(sel/4)%len(special)]
	}
}

// fuzzSeeds are call sequences that reach deep into the handlers.
func fuzzSeeds() [][]byte {
	index := map[uint64]byte{}
	for i, s := range syscallTable {
		index[s.nr] = byte(i)
	}
	small := func(v byte) []byte { return []byte{0, v} }
	ptr := func(off uint16) []byte { return []byte{1, byte(off >> 12), byte(off >> 4)} }
	raw := func(v uint64) []byte { return binary.LittleEndian.AppendUint64([]byte{2}, v) }
	call := func(nr uint64, args ...[]byte) []byte {
		b := []byte{index[nr]}
		for _, a := range args {
			b = append(b, a...)
		}
		for i := len(args); i < 6; i++ {
			b = append(b, small(0)...)
		}
		return b
	}
	memory := make([]byte, 256) // zeros: empty iovecs, sigactions, masks
	seq := func(calls ...[]byte) []byte {
		b := append([]byte(nil), memory...)
		for _, c := range calls {
			b = append(b, c...)
		}
		return append(b, memory...) // as much again, so the first half is memory
	}
	// A volume's file, truncated, mapped shared, locked, truncated again
	// under its mapping: its path at 0, a struct flock at 64.
	file := make([]byte, 256)
	copy(file, "/data/f\x00")
	file[64] = unix.F_WRLCK
	fileCalls := slices.Concat(call(unix.SYS_OPEN, ptr(0), small(unix.O_RDWR|unix.O_CREAT), raw(0o644)),
		call(unix.SYS_FTRUNCATE, small(5), raw(8192)),
		call(unix.SYS_MMAP, small(0), raw(8192), small(3), small(unix.MAP_SHARED), small(5)),
		call(unix.SYS_FCNTL, small(5), small(unix.F_SETLK), ptr(64)),
		call(unix.SYS_FTRUNCATE, small(5), small(0)),
		call(unix.SYS_WRITE, small(5), raw(0x50000000), raw(4096)))
	return [][]byte{
		// The first half is the memory: the calls, then zeros to match.
		slices.Concat(file, fileCalls, make([]byte, len(file)-len(fileCalls))),
		seq(call(unix.SYS_PIPE2, ptr(0), small(0)), call(unix.SYS_WRITE, small(6), ptr(64), small(8)),
			call(unix.SYS_READ, small(5), ptr(128), small(8)), call(unix.SYS_CLOSE, small(5))),
		seq(call(unix.SYS_EPOLL_CREATE1, small(0)), call(unix.SYS_EPOLL_CTL, small(5), small(1), small(4), ptr(0)),
			call(unix.SYS_EPOLL_WAIT, small(5), ptr(64), small(4), small(0))),
		seq(call(unix.SYS_MMAP, small(0), raw(1<<20), small(3), small(0x22)), call(unix.SYS_MADVISE, raw(0x50000000), raw(4096), small(4))),
		seq(call(unix.SYS_PWRITE64, small(3), ptr(0), raw(512), raw(512)), call(unix.SYS_PREAD64, small(3), ptr(0), raw(512), small(0)),
			call(unix.SYS_FSYNC, small(3))),
		seq(call(unix.SYS_SENDMMSG, small(4), ptr(0), small(2), small(0)), call(unix.SYS_RECVMMSG, small(4), ptr(0), small(2), small(0x40))),
		seq(call(unix.SYS_RT_SIGACTION, small(10), ptr(0), ptr(64), small(8)), call(unix.SYS_TGKILL, small(1), small(1), small(10)),
			call(unix.SYS_RT_SIGRETURN)),
		seq(call(unix.SYS_CLONE, raw(cloneThreadFlags), small(0), ptr(0)), call(unix.SYS_FUTEX, ptr(0), small(0), small(0), small(0))),
		seq([]byte{255}, raw(0x400500)[1:], []byte{vecPF}, raw(4)[1:], raw(0x10)[1:]),
		seq(call(unix.SYS_MMAP, small(0), raw(framering.Size), small(3), small(unix.MAP_SHARED), small(4)),
			call(unix.SYS_EPOLL_CREATE1, small(0)), call(unix.SYS_EPOLL_CTL, small(5), small(1), small(4), ptr(0)),
			call(unix.SYS_READ, small(4), ptr(0), small(64)), call(unix.SYS_CLOSE, small(4))),
	}
}
