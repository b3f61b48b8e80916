package main

import (
	"math"
	"testing"
)

func testModel() *model {
	return &model{used: 0.5, threads: 4, kernelThreads: 3, boot: 1, jump: 0.3, r: &Rates{
		InUseBytes: 100, StoredBytes: 90, MemcpyMBps: 10000, VerifyMBps: 3000,
		Codecs: map[string]Codec{
			"kjump-zstd": {CompressMBps: 200, DecompressMBps: 1000, Ratio: 3},
			"kjump-s2":   {CompressMBps: 500, DecompressMBps: 1500, Ratio: 2},
			"lzo":        {CompressMBps: 400, DecompressMBps: 600, Ratio: 2},
			"lz4":        {CompressMBps: 450, DecompressMBps: 1300, Ratio: 2},
		}}}
}

// The modelled Auto codes all S2 when even S2 outruns the disk's share of
// the CPUs, all zstd when the disk is slower than zstd, and in between the
// mix where CPUs and disk finish together.
func TestCaptureMix(t *testing.T) {
	m := testModel()
	mc := m.machine(8)
	for _, c := range []struct {
		disk float64
		want func(x float64) bool
	}{
		{1e6, func(x float64) bool { return x == 0 }},
		{10, func(x float64) bool { return x == 1 }},
		{600, func(x float64) bool { return x > 0 && x < 1 }},
	} {
		secs, img, x := m.kjumpCapture(mc, disk{"d", c.disk})
		if !c.want(x) {
			t.Errorf("disk %g MB/s: zstd share %.2f", c.disk, x)
		}
		if x > 0 && x < 1 {
			z, s := m.r.Codecs["kjump-zstd"], m.r.Codecs["kjump-s2"]
			cpu := mc.stored * (x/z.CompressMBps + (1-x)/s.CompressMBps) / 4
			if math.Abs(cpu-img/c.disk) > 1e-6 || math.Abs(secs-cpu) > 1e-6 {
				t.Errorf("disk %g MB/s: cpu %.3f s, disk %.3f s, capture %.3f s: want all equal", c.disk, cpu, img/c.disk, secs)
			}
		}
	}
}

// A machine holds the dump's share of non-zero pages among its used ones.
func TestMachineScalesTheDump(t *testing.T) {
	m := testModel()
	mc := m.machine(16)
	if want := 16 * 1073.741824 * 0.5; math.Abs(mc.inUse-want) > 1e-6 || math.Abs(mc.stored-want*0.9) > 1e-6 {
		t.Errorf("16 GB at 50%% used: %+v", mc)
	}
}
