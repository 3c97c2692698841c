# A variant for the lab: copies kernels/src to DEST with
# FlashAttention-3's pingpong added to the TMA forward (flash_attention_tma_forward.cu): the two
# consumer warpgroups take turns issuing their products (named barriers 1 and 2), so one's
# softmax runs while the other's products do. On an H100 (2026-12-07) 4 % faster than the TMA forward
# at 1 × 16384, d 128 (279.8 against 269.4 TFLOP/s) and 5 % at 8 × 1024, d 64, its out and lse as close
# to mma.sync's; applied to kernels/src, `run.sh hopper` gives 60 of 60. Not in src/ until the
# attention tests have run it on a GPU through the addon.
#   python3 kernels/dev/lab/pingpong.py kernels/src /tmp/pp && bash kernels/dev/lab/build.sh /tmp/lab-pp /tmp/pp
#   /tmp/lab-pp/attention_lab 1 32 8 16384 128 10 fwd
import shutil, sys
src, dest = sys.argv[1:3]
shutil.copytree(src, dest, dirs_exist_ok=True)
p = f"{dest}/flash_attention_tma_forward.cu"
s = open(p).read()
def sub(old, new):
    global s
    assert s.count(old) == 1, old
    s = s.replace(old, new)
sub("""  uint32_t qUses = 0, kvUses = 0;
  for (;;) {
    const RingSlot q = ringSlot(qUses++, 2);
    tma::wait(&qFull[q.index], q.parity);
    const ItemPlan item = plan[q.index];
    if (item.item < 0) return;""", """  uint32_t qUses = 0, kvUses = 0;
  // Turns: warpgroup c issues its products after bar.sync on barrier 1 + c, then lets the other go.
  auto myTurn = [&] { tma::syncNamed(1 + cg, 256); };
  auto yourTurn = [&] { tma::arriveNamed(2 - cg, 256); };
  if (cg == 1) tma::arriveNamed(1, 256);  // the first turn is consumer 0's
  for (;;) {
    const RingSlot q = ringSlot(qUses++, 2);
    tma::wait(&qFull[q.index], q.parity);
    const ItemPlan item = plan[q.index];
    if (item.item < 0) {
      if (cg == 0) myTurn();  // consumer 1's last pass of the turn
      return;
    }""")
sub("""      if (!groupSees(tile)) {
        warpRelease(&kvEmpty[st.index]);
        continue;
      }""", """      if (!groupSees(tile)) {
        myTurn();
        yourTurn();
        warpRelease(&kvEmpty[st.index]);
        continue;
      }""")
sub("""      pinAccumulator(o);
      pinFragments(pa);
      wgmma::fence();
#pragma unroll
      for (int k = 0; k < D / 16; k++)""", """      pinAccumulator(o);
      pinFragments(pa);
      myTurn();
      wgmma::fence();
#pragma unroll
      for (int k = 0; k < D / 16; k++)""")
sub("""      issuePV();
      wgmma::commit();
      wgmma::wait<1>();  // S is done; P·V may still run""", """      issuePV();
      wgmma::commit();
      yourTurn();
      wgmma::wait<1>();  // S is done; P·V may still run""")
open(p, "w").write(s)
