package vdso

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
)

// TestGetrandomMatchesSource reassembles testdata/getrandom.s, and checks
// both functions fit where the image puts them.
func TestGetrandomMatchesSource(t *testing.T) {
	if code := testenv.Assemble(t, "testdata/getrandom.s"); !bytes.Equal(code, vdsoGetrandom) {
		t.Fatalf("vdsoGetrandom differs from its source:\n got % x\nwant % x", vdsoGetrandom, code)
	}
	if vdsoClockOff+len(vdsoClockGettime) > vdsoRandomOff || vdsoRandomOff+len(vdsoGetrandom) > Size {
		t.Fatalf("code overlaps: clock_gettime %#x+%#x, getrandom %#x+%#x", vdsoClockOff, len(vdsoClockGettime), vdsoRandomOff, len(vdsoGetrandom))
	}
}

// chachaBlock is ChaCha20's block function (RFC 8439) with a 64-bit block
// counter in words 12 and 13 and a zero nonce, as Linux's vDSO uses it: the
// reference the assembly is checked against.
func chachaBlock(key []byte, counter uint64) []byte {
	var s, x [16]uint32
	s[0], s[1], s[2], s[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	for i := 0; i < 8; i++ {
		s[4+i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	s[12], s[13] = uint32(counter), uint32(counter>>32)
	x = s
	qr := func(a, b, c, d int) {
		x[a] += x[b]
		x[d] = bits.RotateLeft32(x[d]^x[a], 16)
		x[c] += x[d]
		x[b] = bits.RotateLeft32(x[b]^x[c], 12)
		x[a] += x[b]
		x[d] = bits.RotateLeft32(x[d]^x[a], 8)
		x[c] += x[d]
		x[b] = bits.RotateLeft32(x[b]^x[c], 7)
	}
	for i := 0; i < 10; i++ {
		qr(0, 4, 8, 12)
		qr(1, 5, 9, 13)
		qr(2, 6, 10, 14)
		qr(3, 7, 11, 15)
		qr(0, 5, 10, 15)
		qr(1, 6, 11, 12)
		qr(2, 7, 8, 13)
		qr(3, 4, 9, 14)
	}
	out := make([]byte, 64)
	for i := range x {
		binary.LittleEndian.PutUint32(out[4*i:], x[i]+s[i])
	}
	return out
}

// TestChachaReference checks the reference against RFC 8439's test vectors
// A.1 #1, #2 and #3 (zero nonce).
func TestChachaReference(t *testing.T) {
	key1 := make([]byte, 32)
	key1[31] = 1
	for _, tc := range []struct {
		key     []byte
		counter uint64
		want    string
	}{
		{make([]byte, 32), 0, "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"},
		{make([]byte, 32), 1, "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"},
		{key1, 1, "3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0"},
	} {
		if got := hex.EncodeToString(chachaBlock(tc.key, tc.counter)); got != tc.want {
			t.Errorf("block(%x, %d) = %s, want %s", tc.key, tc.counter, got, tc.want)
		}
	}
}

// model is Linux's getrandom state machine (lib/vdso/getrandom.c) over the
// reference block function: what the assembly must compute.
type model struct {
	batch [96]byte
	key   [32]byte
	pos   int
}

// read returns n bytes as the vDSO does, erasing what it returns.
func (m *model) read(n int) []byte {
	out := make([]byte, 0, n)
	var counter uint64
	for {
		if m.pos < len(m.batch) {
			take := min(len(m.batch)-m.pos, n-len(out))
			out = append(out, m.batch[m.pos:m.pos+take]...)
			clear(m.batch[m.pos : m.pos+take])
			m.pos += take
		}
		if len(out) == n {
			return out
		}
		for n-len(out) >= 64 {
			out = append(out, chachaBlock(m.key[:], counter)...)
			counter++
		}
		next := append(chachaBlock(m.key[:], counter), chachaBlock(m.key[:], counter+1)...)
		counter += 2
		copy(m.batch[:], next)
		copy(m.key[:], next[96:])
		m.pos = 0
	}
}

// state is one getrandom state in memory the vDSO can use.
type state []byte

func (s state) key() []byte   { return s[stateKey : stateKey+32] }
func (s state) batch() []byte { return s[stateBatch : stateBatch+96] }
func (s state) pos() int      { return int(s[statePos]) }
func (s state) generation() uint64 {
	return binary.LittleEndian.Uint64(s[stateGeneration:])
}

// newState returns a state of the current generation holding key and an
// empty batch, as after a reseed, at the start of a fresh page.
func newState(t testing.TB, v *nativeVDSO, key []byte) state {
	s := state(mapPages(t, 4096, unix.PROT_READ|unix.PROT_WRITE))
	copy(s.key(), key)
	binary.LittleEndian.PutUint64(s[stateGeneration:], v.random.gen)
	s[statePos] = 96
	return s
}

// read calls __vdso_getrandom for n bytes into a fresh buffer.
func (v *nativeVDSO) read(t *testing.T, s state, n int, flags uint32) []byte {
	t.Helper()
	buf := mapPages(t, (n+4096)&^4095, unix.PROT_READ|unix.PROT_WRITE)
	if r := v.getrandom(addr(buf), uint64(n), flags, addr(s), stateSize); r != int64(n) {
		t.Fatalf("getrandom(%d) = %d", n, r)
	}
	return buf[:n]
}

// TestGetrandomParams checks the parameters query: Linux's struct
// vgetrandom_opaque_params, reserved words zeroed.
func TestGetrandomParams(t *testing.T) {
	v := mapVDSO(t)
	p := mapPages(t, 4096, unix.PROT_READ|unix.PROT_WRITE)
	for i := range p {
		p[i] = 0xff
	}
	if r := v.getrandom(0, 0, 0, addr(p), ^uint64(0)); r != 0 {
		t.Fatalf("params query = %d", r)
	}
	le := binary.LittleEndian
	if size, prot, flags := le.Uint32(p), le.Uint32(p[4:]), le.Uint32(p[8:]); size != stateSize || prot != unix.PROT_READ|unix.PROT_WRITE || flags != 0x08|unix.MAP_ANONYMOUS {
		t.Errorf("params: size %d prot %#x flags %#x", size, prot, flags)
	}
	if !bytes.Equal(p[12:64], make([]byte, 52)) || p[64] != 0xff {
		t.Errorf("reserved words % x, then %#x", p[12:64], p[64])
	}
}

// TestGetrandomChaCha20 runs a sequence of reads through the vDSO and the
// model from the same key, and compares output and state after each: the
// ChaCha20 stream, the batch, and fast key erasure (the key that produced
// any output is gone before the call returns; returned bytes are erased
// from the batch).
func TestGetrandomChaCha20(t *testing.T) {
	v := mapVDSO(t)
	key := chachaBlock(make([]byte, 32), 7)[:32]
	s := newState(t, v, key)
	m := &model{pos: 96}
	copy(m.key[:], key)
	for i, n := range []int{16, 16, 1, 79, 0, 95, 64, 200, 7, 4096, 33, 96, 97, 16} {
		keyBefore, posBefore := bytes.Clone(s.key()), s.pos()
		got, want := v.read(t, s, n, 0), m.read(n)
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d (%d bytes) = %x, want %x", i, n, got, want)
		}
		if !bytes.Equal(s.key(), m.key[:]) || !bytes.Equal(s.batch(), m.batch[:]) || s.pos() != m.pos {
			t.Fatalf("read %d: state key %x batch %x pos %d, want %x %x %d", i, s.key(), s.batch(), s.pos(), m.key, m.batch, m.pos)
		}
		if n > 96-posBefore && bytes.Equal(s.key(), keyBefore) {
			t.Errorf("read %d (%d bytes) generated output but kept its key", i, n)
		}
		if n >= 8 && bytes.Contains(s[:stateSize], got[n-8:]) {
			t.Errorf("read %d: returned bytes are still in the state", i)
		}
		if s[stateInUse] != 0 || s.generation() != v.random.gen {
			t.Errorf("read %d: in use %d, generation %d", i, s[stateInUse], s.generation())
		}
	}
}

// TestGetrandomReseed checks that a bumped generation makes the state take
// a new key from the system call before answering, and drop its batch.
func TestGetrandomReseed(t *testing.T) {
	v := mapVDSO(t)
	key := make([]byte, 32)
	s := newState(t, v, key)
	m := &model{pos: 96}
	if got, want := v.read(t, s, 16, 0), m.read(16); !bytes.Equal(got, want) {
		t.Fatalf("before the bump: %x, want %x", got, want)
	}
	v.random.Reseed()
	got := v.read(t, s, 16, 0)
	if bytes.Equal(got, m.read(16)) {
		t.Fatal("after the bump the state kept its key")
	}
	if s.generation() != 2 || s[stateInUse] != 0 {
		t.Fatalf("generation %d, in use %d", s.generation(), s[stateInUse])
	}
	// The state now runs on the system call's key; the model, started
	// from it, agrees again.
	m = &model{pos: s.pos()}
	copy(m.key[:], s.key())
	copy(m.batch[:], s.batch())
	if !bytes.Equal(v.read(t, s, 200, 0), m.read(200)) {
		t.Fatal("after the reseed the output does not follow the state")
	}
}

// TestGetrandomConcurrentReseed reads while another goroutine bumps the
// generation as fast as it can, so that calls see it move midway (and
// start again, or give up to the system call, which may return fewer
// bytes when the test process is signalled): every read returns bytes, and
// leaves the state free and of a generation that was published (or 0,
// forgotten).
func TestGetrandomConcurrentReseed(t *testing.T) {
	v := mapVDSO(t)
	s := newState(t, v, make([]byte, 32))
	buf := mapPages(t, 1<<16, unix.PROT_READ|unix.PROT_WRITE)
	done, bumped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bumped)
		for {
			select {
			case <-done:
				return
			default:
				v.random.Reseed()
			}
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { close(done); <-bumped }) }
	t.Cleanup(stop) // before the memory is unmapped, should the test fail

	for i := 0; i < 2000; i++ {
		n := uint64(1 + i*31%len(buf))
		if r := v.getrandom(addr(buf), n, 0, addr(s), stateSize); r <= 0 || r > int64(n) {
			t.Fatalf("read %d of %d bytes = %d", i, n, r)
		}
		if s[stateInUse] != 0 {
			t.Fatalf("read %d left the state in use", i)
		}
	}
	stop()
	if g := s.generation(); g > v.random.gen {
		t.Errorf("state generation %d, past the published %d", g, v.random.gen)
	}
}

// TestGetrandomFallback checks what the vDSO leaves to the system call, and
// leaves the state alone for: the host kernel's answer is the test's.
func TestGetrandomFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flags    uint32
		stateLen uint64
		inUse    bool
		seedless bool
		want     int64 // bytes, or negative errno
	}{
		{name: "unknown flag", flags: 0x8, stateLen: stateSize, want: -int64(unix.EINVAL)},
		{name: "insecure and random", flags: unix.GRND_INSECURE | unix.GRND_RANDOM, stateLen: stateSize, want: -int64(unix.EINVAL)},
		{name: "short state", stateLen: stateSize - 1, want: 32},
		{name: "long state", stateLen: stateSize + 1, want: 32},
		{name: "params size with a buffer", stateLen: ^uint64(0), want: 32},
		{name: "in use", stateLen: stateSize, inUse: true, want: 32},
		{name: "not seeded", stateLen: stateSize, seedless: true, want: 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mapVDSO(t)
			if tc.seedless {
				storeUint64(v.mem[vvarGeneration:], 0)
			}
			s := newState(t, v, make([]byte, 32))
			if tc.inUse {
				s[stateInUse] = 1
			}
			before := bytes.Clone(s[:stateSize])
			buf := mapPages(t, 4096, unix.PROT_READ|unix.PROT_WRITE)
			if r := v.getrandom(addr(buf), 32, tc.flags, addr(s), tc.stateLen); r != tc.want {
				t.Fatalf("getrandom = %d, want %d", r, tc.want)
			}
			if !bytes.Equal(s[:stateSize], before) {
				t.Errorf("the state changed: % x", s[:stateSize])
			}
			if tc.want > 0 && bytes.Equal(buf[:32], make([]byte, 32)) {
				t.Errorf("no bytes written")
			}
		})
	}
}

// TestGetrandomArguments checks the answers the vDSO gives itself: flags it
// knows, empty reads, states straddling a page, huge lengths, and a
// corrupt batch position.
func TestGetrandomArguments(t *testing.T) {
	v := mapVDSO(t)
	for _, flags := range []uint32{unix.GRND_NONBLOCK, unix.GRND_RANDOM, unix.GRND_INSECURE, unix.GRND_NONBLOCK | unix.GRND_RANDOM} {
		s := newState(t, v, make([]byte, 32))
		if got := v.read(t, s, 16, flags); !bytes.Equal(got, (&model{pos: 96}).read(16)) {
			t.Errorf("flags %#x: not answered from the state", flags)
		}
	}
	s := newState(t, v, make([]byte, 32))
	if r := v.getrandom(0, 0, 0, addr(s), stateSize); r != 0 || s.pos() != 96 {
		t.Errorf("empty read = %d, pos %d", r, s.pos())
	}
	if r := v.getrandom(0, 16, 0, addr(s)+4096-stateSize+1, stateSize); r != -int64(unix.EFAULT) {
		t.Errorf("state across a page = %d, want -EFAULT", r)
	}
	s[statePos] = 200 // past the batch: empty, never read beyond it
	if got := v.read(t, s, 16, 0); !bytes.Equal(got, (&model{pos: 96}).read(16)) {
		t.Errorf("corrupt position: %x", got)
	}
	// A huge length returns 32 MiB, as the system call, and writes no more.
	const limit = 1 << 25
	buf := mapPages(t, limit+4096, unix.PROT_READ|unix.PROT_WRITE)
	if r := v.getrandom(addr(buf), 1<<63, 0, addr(s), stateSize); r != limit {
		t.Errorf("huge length = %d, want %d", r, limit)
	}
	if !bytes.Equal(buf[limit:], make([]byte, 4096)) || bytes.Equal(buf[limit-64:limit], make([]byte, 64)) {
		t.Errorf("huge length: wrong extent written")
	}
}

// BenchmarkGetrandom compares the vDSO's getrandom, run natively, with the
// host's (crypto/rand, through the host kernel's vDSO where it has one), 16
// bytes a call.
func BenchmarkGetrandom(b *testing.B) {
	b.Run("vdso", func(b *testing.B) {
		v := mapVDSO(b)
		s := newState(b, v, make([]byte, 32))
		buf := mapPages(b, 4096, unix.PROT_READ|unix.PROT_WRITE)
		for b.Loop() {
			v.getrandom(addr(buf), 16, 0, addr(s), stateSize)
		}
	})
	b.Run("host", func(b *testing.B) {
		var buf [16]byte
		for b.Loop() {
			rand.Read(buf[:])
		}
	})
}

// guarded maps n bytes (at most a page) that end where an inaccessible
// page begins, so that a write past them faults the test.
func guarded(t testing.TB, n int) []byte {
	b := mapPages(t, 2*4096, unix.PROT_READ|unix.PROT_WRITE)
	if err := unix.Mprotect(b[4096:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return b[4096-n : 4096]
}

// FuzzGetrandom calls the vDSO with any state contents, length, flags and
// state size: it returns no more than asked, writes nothing past what it
// returns (the buffer and the state end at an inaccessible page), and
// leaves the state free.
func FuzzGetrandom(f *testing.F) {
	f.Add(make([]byte, stateSize), uint16(16), uint32(0), uint64(stateSize))
	f.Add(bytes.Repeat([]byte{0xff}, stateSize), uint16(4096), uint32(unix.GRND_NONBLOCK), uint64(stateSize))
	f.Add(make([]byte, stateSize), uint16(0), uint32(0), ^uint64(0))
	f.Fuzz(func(t *testing.T, contents []byte, n uint16, flags uint32, stateLen uint64) {
		v := mapVDSO(t)
		s := state(guarded(t, stateSize))
		copy(s, contents)
		s[stateInUse] = 0
		buf := guarded(t, 4096)
		n %= 4097
		r := v.getrandom(addr(buf), uint64(n), flags, addr(s), stateLen)
		if r > int64(n) {
			t.Fatalf("getrandom(%d) = %d", n, r)
		}
		if w := max(r, 0); !bytes.Equal(buf[w:], make([]byte, 4096-w)) {
			t.Errorf("wrote past the %d bytes it returned", r)
		}
		if s[stateInUse] != 0 {
			t.Errorf("left the state in use")
		}
	})
}
