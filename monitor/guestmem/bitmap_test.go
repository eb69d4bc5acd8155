package guestmem

import "testing"

func TestBitmap(t *testing.T) {
	b := newBitmap(300)
	if n := b.set(10, 200); n != 190 {
		t.Fatalf("set: %d newly set, want 190", n)
	}
	if n := b.set(100, 210); n != 10 {
		t.Fatalf("overlapping set: %d newly set, want 10", n)
	}
	if n := b.count(0, 300); n != 200 {
		t.Fatalf("count %d, want 200", n)
	}
	if i, ok := b.findFree(0, 300, 10); !ok || i != 0 {
		t.Fatalf("findFree(10) = %d, %v; want 0", i, ok)
	}
	if i, ok := b.findFree(0, 300, 11); !ok || i != 210 {
		t.Fatalf("findFree(11) = %d, %v; want 210", i, ok)
	}
	if _, ok := b.findFree(0, 300, 91); ok {
		t.Fatal("findFree(91) found a run that does not exist")
	}
	if n := b.clear(50, 60); n != 10 {
		t.Fatalf("clear: %d were set, want 10", n)
	}
	if i, ok := b.findFree(20, 300, 10); !ok || i != 50 {
		t.Fatalf("findFree after clear = %d, %v; want 50", i, ok)
	}
}
