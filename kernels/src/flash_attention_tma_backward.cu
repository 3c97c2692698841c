// Flash attention backward on Hopper's warpgroup tensor cores (wgmma.cuh), fed by the Tensor
// Memory Accelerator (tma.cuh): the key pass of flash_attention_backward.cu for bf16 q, k, v,
// dOut at head dimensions 64 and 128, on compute capability 9.0 (hopperTensorCores());
// elsewhere flash_attention_mma_backward.cu runs it, and here too for views TMA
// cannot read (not asyncRows: misaligned, strided oddly or dOut in f32). The same walk, masks,
// tile skipping and outputs as that kernel (its header says what each step computes);
// FlashAttention-3's design, warp-specialised as the TMA forward (flash_attention_tma_forward.cu):
//
// A block is three warpgroups on one SM for the whole launch (persistent: as many blocks as
// multiprocessors), taking work items — a key block of BN = 128 keys of one KV head of one
// batch row — from a counter zeroed before the launch, key block by key block within a head (a
// causal head's first key blocks see the most queries, so the launch ends on light items, and
// the blocks running at once walk the same heads' Q and dO, which L2 then holds).
//   - The producer (warpgroup 0, its registers given to the consumers with setmaxnreg; one warp
//     works) settles the item — its keys' mask flags and, in a packed row, where each key's
//     queries end; the number of query steps its walk takes — and loads its K and V once with
//     TMA, as soon as the consumers are done with the last item's. Then it walks the QueryWalk
//     (every query block of every head of the KV head's group that sees the key block) and, per
//     step, loads Q and dO into one of STAGES stages with TMA and the step's row terms (lse in
//     log2 units, Δ, the fully-masked flags) into the stage's small arrays, as soon as the
//     consumers release that stage (mbarriers: full when the bytes have landed and the row
//     terms are written, empty when all 8 consumer warps are done).
//   - Two consumer warpgroups own keys 64w … 64w + 63 of the block each and their dK, dV
//     accumulators (m64 × D, f32 registers) for the whole item. Per step (keys as accumulator
//     rows, queries as columns):
//       Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ              (A = K / V rows, B = Q / dO rows, both K-major over d)
//       Pᵀ, dSᵀ as the mma kernel computes them (the m64nBM accumulator's lane layout is mma.cuh's
//                                         16 × 8 tiles', so its masking carries over as it is)
//       dV += Pᵀ·dO, dK += dSᵀ·Q            (A = Pᵀ / dSᵀ rounded to bf16 in registers; B = dO / Q
//                                         rows MN-major: the reduction runs over their rows)
//     then release the stage (every product that reads Q and dO has completed), and with dSᵀ
//     stored into one of two swizzled [key][query] tiles, meet the other consumer warpgroup at
//     a named barrier of their 256 threads (never the producer's); dQ = dS·K (A = that tile read
//     MN-major, B = K rows MN-major) is added to the f32 sum with paired atomics, once per
//     element and key block: each warpgroup computes a 64 × 64 tile of dQ over all 128 keys, the
//     query block's half at d = 64 and the head dimension's half at d = 128. Two dSᵀ tiles make
//     that barrier the step's only one: a warpgroup writes a tile again two steps later, after
//     the other has passed the barrier of the step between, behind its dQ's wait.
//     After the item's last step each consumer warp releases K and V (the producer loads the
//     next item's while dK and dV are stored).
// The products overlap the elementwise work (FlashAttention-3's intra-warpgroup pipelining):
// Sᵀ and dPᵀ are two commit groups, so Pᵀ's exponentials run while dPᵀ is in flight; dV and dK
// are issued once dSᵀ is known and run while it is rounded and stored. Each accumulator is read
// only after the wait covering its group, each batch follows a wgmma::fence(), and the bf16 A
// fragments (Pᵀ, dSᵀ) are fresh registers nothing writes before that wait. dQ's products run
// over all 128 keys (the unseen steps' dSᵀ is zero) on a zeroed accumulator, and no product sits
// under a branch ptxas cannot prove warpgroup-uniform: it would serialise the pipeline (C7520).
//
// Registers: the consumers take 240 a thread (setmaxnreg; the producer keeps 24: 128·24 + 256·240 =
// 384 · 168, the block's pool at launch): dK and dV D/2 floats each, Sᵀ and dPᵀ BM/2 each (query
// blocks of BM = 128 rows at d = 64, 64 at d = 128: 192 floats either way), then Pᵀ and dSᵀ as bf16
// pairs beside dQ's 32. Shared memory: K, V (BN × D), STAGES = 3 stages of Q, dO (BM × D), two dSᵀ
// tiles (BN × BM), all bf16 — 192 KiB at either head dimension — then the barriers, a KiB to align
// the tiles, and the stages' row terms and the item's key flags in static shared memory. A fourth
// stage or a second K/V buffer (the next item's K and V during this one's last steps) would not fit
// beside two dSᵀ tiles; an item is hundreds of steps, so its one K/V load is cheap.
#include "wgmma_tiles.cuh"
#include "tma.cuh"

namespace tt {
namespace flash {

namespace {

template <int D>
struct TmaKeyPassTiles {
  static_assert(D == 64 || D == 128, "the wgmma backward takes head dimensions 64 and 128");
  static constexpr int CONSUMERS = 2, THREADS = 128 * (CONSUMERS + 1), CONSUMER_THREADS = 128 * CONSUMERS;
  static constexpr int BN = 64 * CONSUMERS, BM = D == 64 ? 128 : 64, STAGES = 3;
  static constexpr uint32_t keyBytes = tma::tileBytes<BN, D>(), queryBytes = tma::tileBytes<BM, D>();
  static constexpr int dsBytes = swizzledTileBytes<BN, BM>();
  static constexpr int BARRIERS = 2 + 2 * STAGES;  // full and empty, for K/V and per stage
  // K, V; Q, dO per stage; two dSᵀ tiles; the barriers; a KiB to align the first tile.
  static constexpr size_t bytes =
      2 * keyBytes + 2 * STAGES * queryBytes + 2 * dsBytes + BARRIERS * sizeof(tma::Barrier) + wgmma::kAtomBytes;
  static_assert(bytes + 6 * 1024 <= 227 * 1024, "sm_90's shared memory per block (the static row terms and key flags included)");
  // setmaxnreg: the producer keeps 24 registers a thread, the consumers 240 — FlashAttention-3's
  // split — filling exactly the block's pool of 384 · 168 (tma_view.h registersAtLaunch): 128·24 +
  // 256·240 = 64,512. (The producer's code fits in 24: ptxas spills none.)
  static constexpr int PRODUCER_REGISTERS = 24, CONSUMER_REGISTERS = 240;
  static_assert(128 * PRODUCER_REGISTERS + 128 * CONSUMERS * CONSUMER_REGISTERS <= THREADS * tma::registersAtLaunch(THREADS),
                "setmaxnreg.inc would wait forever for registers the block was never given");
  static constexpr uint32_t DS_BARRIER = 1;  // the named barrier the consumers meet at per step
};

// The kernel's parameters: the key pass's, the TMA descriptors of q, dOut (boxes of 64 columns
// × BM rows), k, v (× BN rows) and the work counter (zeroed before the launch).
struct TmaKeyPassParams {
  tma::TensorMap q, dOut, k, v;
  MmaKeyParams p;
  int* nextItem;
  int64_t items, keyBlocks;
};

// The work item an index names: its batch row, KV head and first key (key blocks in order
// within a head).
struct KeyItem {
  int64_t b, kvh, j0;
};
template <int BN>
__device__ __forceinline__ KeyItem keyItem(int64_t item, int64_t keyBlocks, int64_t kvHeads) {
  const int64_t bkv = item / keyBlocks;
  return KeyItem{bkv / kvHeads, bkv % kvHeads, item % keyBlocks * BN};
}

// What the producer tells the consumers about the item whose K and V it loads.
struct KeyItemPlan {
  int64_t item;   // −1: no item is left
  int64_t steps;  // the query steps of its walk
};

// A stage's query block and its rows' terms (the producer's, beside its Q and dO tiles).
template <int BM>
struct StepTerms {
  float lse[BM], delta[BM];  // lse in log2 units
  bool full[BM];
  QueryStep step;
};

// Use n of a ring of `size` buffers: which one, and the parity of its barriers' phase then.
template <int D>
__global__ void __launch_bounds__(TmaKeyPassTiles<D>::THREADS, 1) tmaKeyPassKernel(const __grid_constant__ TmaKeyPassParams tp) {
  using Tiles = TmaKeyPassTiles<D>;
  constexpr int BM = Tiles::BM, BN = Tiles::BN, STAGES = Tiles::STAGES;
  constexpr int KD = D / 16;   // k-steps over the head dimension
  constexpr int KQ = BM / 16;  // k-steps over a query block
  constexpr int CONSUMER_WARPS = 4 * Tiles::CONSUMERS;
  extern __shared__ float smem[];
  char* Ks = swizzledTiles(smem);                   // [D/64][BN] swizzled rows
  char* Vs = Ks + Tiles::keyBytes;                  // [D/64][BN]
  char* Qs = Vs + Tiles::keyBytes;                  // [STAGES][D/64][BM]
  char* dOs = Qs + STAGES * Tiles::queryBytes;      // [STAGES][D/64][BM]
  char* dSs = dOs + STAGES * Tiles::queryBytes;     // [2][BM/64][BN]: dSᵀ, keys × queries
  // The barriers (in dynamic shared memory: the simulation keeps its emulated ones there).
  tma::Barrier* kvFull = reinterpret_cast<tma::Barrier*>(dSs + 2 * Tiles::dsBytes);
  tma::Barrier *kvEmpty = kvFull + 1, *stageFull = kvEmpty + 1, *stageEmpty = stageFull + STAGES;
  __shared__ KeyItemPlan plan;
  __shared__ bool keyOk[BN];             // the item's key j0 + r exists and the key mask shows it
  __shared__ int64_t keyQueriesEnd[BN];  // in a packed row, where key j0 + r's queries end (else sq)
  __shared__ StepTerms<BM> terms[STAGES];  // per stage: its query block and row terms

  const MmaKeyParams& p = tp.p;
  const AttentionShape& s = p.s;
  const int64_t groups = s.heads / s.kvHeads;
  // The warpgroup, warp-uniform as ptxas sees it (a shuffle, as CUTLASS does): it serialises
  // products under a branch it cannot prove uniform.
  const int group = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
  const int lane = laneId();
  if (threadIdx.x == 0) {
    initRing(kvFull, kvEmpty, 1, CONSUMER_WARPS);
    initRing(stageFull, stageEmpty, STAGES, CONSUMER_WARPS);
    tma::fenceBarrierInit();
  }
  __syncthreads();

  if (group == 0) {
    // The producer: one warp; its warpgroup's registers go to the consumers.
    tma::decreaseRegisters<Tiles::PRODUCER_REGISTERS>();
    if (threadIdx.x >= 32) return;
    uint32_t itemUses = 0, stageUses = 0;
    for (;;) {
      const int item = nextItem(tp.nextItem);
      if (item >= tp.items) {
        tma::wait(kvEmpty, (itemUses++ & 1) ^ 1);
        if (lane == 0) {
          plan.item = -1;
          tma::arrive(kvFull);
        }
        return;
      }
      const KeyItem it = keyItem<BN>(item, tp.keyBlocks, s.kvHeads);
      const Visibility vis = visibilityOf(s, p.in.starts, it.b);
      const QueryWalk<BM> walk{p, queryBand<BN>(s, vis, it.j0), it.b, it.kvh, groups};
      // The item's key mask is read while the consumers still work on the last item, and stored
      // once they are done with its K, V and flags.
      bool ok[BN / 32];
#pragma unroll
      for (int c = 0; c < BN / 32; c++) {
        const int64_t j = it.j0 + c * 32 + lane;
        ok[c] = j < s.sk && keyVisible(p.in.keyMask, p.in.maskt, it.b * s.sk + j);
      }
      const int64_t steps = walk.steps();
      tma::wait(kvEmpty, (itemUses++ & 1) ^ 1);
#pragma unroll
      for (int c = 0; c < BN / 32; c++) {
        const int64_t j = it.j0 + c * 32 + lane;
        keyOk[c * 32 + lane] = ok[c];
        keyQueriesEnd[c * 32 + lane] = vis.starts ? firstQueryAfterKey(vis.starts, s.sq, j) : s.sq;
      }
      __syncwarp();
      if (lane == 0) {
        plan = KeyItemPlan{item, steps};
        __threadfence_block();  // the plan and every lane's flags (ordered by __syncwarp) before the arrival
        if (steps > 0) {
          tma::arriveExpectTx(kvFull, 2 * Tiles::keyBytes);
          tma::loadSwizzledTile<BN, D>(Ks, tp.k, kvFull, (int32_t)it.j0, (int32_t)it.kvh, (int32_t)it.b);
          tma::loadSwizzledTile<BN, D>(Vs, tp.v, kvFull, (int32_t)it.j0, (int32_t)it.kvh, (int32_t)it.b);
        } else {
          tma::arrive(kvFull);  // no query sees the block: dK and dV are zero
        }
      }
      for (QueryStep at = walk.firstFrom(0); at.gi < groups; at = walk.after(at)) {
        const RingSlot st = ringSlot(stageUses++, STAGES);
        tma::wait(&stageEmpty[st.index], st.parity ^ 1);
        const int64_t h = walk.head(at), bh = it.b * s.heads + h;
        StepTerms<BM>& stage = terms[st.index];
        for (int r = lane; r < BM; r += 32) {
          const RowTerms row = rowTermsAt(p, bh, at.i0 + r, kLog2e);
          stage.lse[r] = row.lse;
          stage.delta[r] = row.delta;
          stage.full[r] = row.full;
        }
        __syncwarp();
        if (lane == 0) {
          stage.step = at;
          __threadfence_block();
          tma::arriveExpectTx(&stageFull[st.index], 2 * Tiles::queryBytes);
          tma::loadSwizzledTile<BM, D>(Qs + st.index * Tiles::queryBytes, tp.q, &stageFull[st.index], (int32_t)at.i0, (int32_t)h,
                                       (int32_t)it.b);
          tma::loadSwizzledTile<BM, D>(dOs + st.index * Tiles::queryBytes, tp.dOut, &stageFull[st.index], (int32_t)at.i0,
                                       (int32_t)h, (int32_t)it.b);
        }
      }
    }
  }

  // A consumer warpgroup.
  tma::increaseRegisters<Tiles::CONSUMER_REGISTERS>();
  const int cg = group - 1, warp = (threadIdx.x / 32) % 4, g = lane >> 2, t = lane & 3;
  const float scaleLog2 = s.scale * kLog2e;
  // This lane's accumulator rows (keys in the block): warp `warp` of the warpgroup owns rows
  // 16·warp … of its 64.
  const int keyRow[2] = {cg * 64 + warp * 16 + g, cg * 64 + warp * 16 + g + 8};
  uint32_t itemUses = 0, stageUses = 0, dsUses = 0;
  for (;;) {
    tma::wait(kvFull, itemUses++ & 1);
    const KeyItemPlan item = plan;
    if (item.item < 0) return;
    const KeyItem it = keyItem<BN>(item.item, tp.keyBlocks, s.kvHeads);
    const int64_t j0 = it.j0, b = it.b, bh0 = b * s.heads + it.kvh * groups;  // bh0: the group's first head
    const Visibility vis = visibilityOf(s, p.in.starts, b);
    const int64_t jw0 = j0 + cg * 64, jw1 = jw0 + 64;  // the warpgroup's keys
    bool groupKeysOk = true;
    for (int k = 0; k < 64; k++) groupKeysOk = groupKeysOk && keyOk[cg * 64 + k];
    wgmma::Accumulator<D> dk, dv;
#pragma unroll
    for (int e = 0; e < D / 2; e++) dk.r[e] = dv.r[e] = 0.f;

    for (int64_t n = 0; n < item.steps; n++) {
      const RingSlot st = ringSlot(stageUses++, STAGES);
      tma::wait(&stageFull[st.index], st.parity);  // Q, dO and the row terms have landed
      const StepTerms<BM>& stage = terms[st.index];
      const QueryStep at = stage.step;
      const int64_t bh = bh0 + at.gi, i0 = at.i0, iLast = i0 + BM - 1;
      const char* Q = Qs + st.index * Tiles::queryBytes;
      const char* dO = dOs + st.index * Tiles::queryBytes;
      char* dSt = dSs + (dsUses++ & 1) * Tiles::dsBytes;

      // Whether some query of the block sees some key of the warpgroup, and whether all see all
      // (uniform over the warpgroup, as its products need).
      const bool groupSees = at.full || (vis.hi(iLast) > jw0 && vis.lo(i0) < jw1);
      const bool dense =
          !at.full && groupKeysOk && jw1 <= s.sk && i0 + BM <= s.sq && vis.lo(iLast) <= jw0 && vis.hi(i0) >= jw1;
      // Per key row, the block's queries that see it structurally: [qLo, qHi) of [0, BM).
      int qLo[2] = {0, 0}, qHi[2] = {BM, BM};
      if (!dense) {
        const int64_t queriesEnd[2] = {keyQueriesEnd[keyRow[0]], keyQueriesEnd[keyRow[1]]};
        keyRowQueries<BM>(s, j0, keyRow, queriesEnd, i0, qLo, qHi);
      }
      // dSᵀ[keyRow[r]][column] as a bf16 pair (column even).
      auto dsPair = [&](int r, int column) { return reinterpret_cast<uint32_t*>(dSt + swizzledByte<BN>(keyRow[r], column)); };
      if (!groupSees) {
#pragma unroll
        for (int c = 0; c < BM / 8; c++) *dsPair(0, c * 8 + 2 * t) = *dsPair(1, c * 8 + 2 * t) = 0u;  // adds nothing to dQ
      } else {
        // Sᵀ and dPᵀ as two commit groups: Pᵀ's exponentials run while dPᵀ is in flight. No
        // accumulator or A fragment is written by another instruction between a product's issue
        // and the wait that covers it; each batch starts with a fence after such writes.
        wgmma::Accumulator<BM> sT, dpT;
        wgmma::fence();
#pragma unroll
        for (int kk = 0; kk < KD; kk++)
          wgmma::Mma<BM>::template shared<false, false>(sT, kMajorOperand(Ks, BN, cg * 64, kk * 16), kMajorOperand(Q, BM, 0, kk * 16),
                                                        kk > 0);
        wgmma::commit();
#pragma unroll
        for (int kk = 0; kk < KD; kk++)
          wgmma::Mma<BM>::template shared<false, false>(dpT, kMajorOperand(Vs, BN, cg * 64, kk * 16),
                                                        kMajorOperand(dO, BM, 0, kk * 16), kk > 0);
        wgmma::commit();
        wgmma::wait<1>();  // Sᵀ
        pinAccumulator(sT);
        // This lane's key rows' flags, read here each step rather than held across the item:
        // at 240 registers they would spill.
        const bool rowKeyOk[2] = {keyOk[keyRow[0]], keyOk[keyRow[1]]};  // shown and < sk
        const bool rowKeyExists[2] = {j0 + keyRow[0] < s.sk, j0 + keyRow[1] < s.sk};

        // Pᵀ in place of Sᵀ: element 4c + e is key row keyRow[e / 2], query column 8c + 2t + e % 2
        // (the mma kernel's tile c, register e).
#pragma unroll
        for (int c = 0; c < BM / 8; c++) {
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const int qc = c * 8 + 2 * t + h;
            const float lse = stage.lse[qc];
#pragma unroll
            for (int r = 0; r < 2; r++) {
              const int e = 4 * c + 2 * r + h;
              if (dense) {
                sT.r[e] = exp2f(fmaf(sT.r[e], scaleLog2, -lse));
              } else {
                const bool visible = rowKeyOk[r] && qc >= qLo[r] && qc < qHi[r];
                const float score = maskedScore(sT.r[e], s.scale, visible, stage.full[qc]);  // past sq: not full, so P = 0
                sT.r[e] = rowKeyExists[r] ? exp2f(fmaf(score, kLog2e, -lse)) : 0.f;
              }
            }
          }
        }
        wgmma::wait<0>();  // dPᵀ
        pinAccumulator(dpT);

        // dSᵀ = Pᵀ ∘ (dPᵀ − D) in place of dPᵀ, from Pᵀ in f32 (before Pᵀ's registers go to
        // its bf16 fragments: both at once would not fit).
#pragma unroll
        for (int c = 0; c < BM / 8; c++) {
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const float delta = stage.delta[c * 8 + 2 * t + h];
#pragma unroll
            for (int r = 0; r < 2; r++) dpT.r[4 * c + 2 * r + h] = sT.r[4 * c + 2 * r + h] * (dpT.r[4 * c + 2 * r + h] - delta);
          }
        }
        // dV += Pᵀ·dO and dK += dSᵀ·Q (k-steps over the block's queries; A = Pᵀ, dSᵀ rounded to
        // bf16), in flight while dSᵀ goes to shared memory for dQ.
        wgmma::fence();
#pragma unroll
        for (int kk = 0; kk < KQ; kk++) {
          uint32_t pa[4], da[4];
          aFragmentOf(sT, kk, pa);
          aFragmentOf(dpT, kk, da);
          *dsPair(0, kk * 16 + 2 * t) = da[0];
          *dsPair(1, kk * 16 + 2 * t) = da[1];
          *dsPair(0, kk * 16 + 8 + 2 * t) = da[2];
          *dsPair(1, kk * 16 + 8 + 2 * t) = da[3];
          wgmma::Mma<D>::template registers<true>(dv, pa, mnMajorOperand(dO, BM, kk * 16), true);
          wgmma::Mma<D>::template registers<true>(dk, da, mnMajorOperand(Q, BM, kk * 16), true);
        }
        wgmma::commit();
      }
      wgmma::wait<0>();  // dV and dK: every product reading this stage has completed
      pinAccumulator(dk);
      pinAccumulator(dv);
      warpRelease(&stageEmpty[st.index]);
      wgmma::fenceSharedForTensorCores();                      // dSᵀ, for the dQ products
      tma::syncNamed(Tiles::DS_BARRIER, Tiles::CONSUMER_THREADS);  // both warpgroups' dSᵀ complete

      // dQ += scale·dS·K: warpgroup w's 64 × 64 tile, query rows qAtom · 64 … and head-dim
      // columns dAtom · 64 …, over all the block's keys (those its queries do not see have a zero
      // dSᵀ; a branch around their products would serialise the pipeline, as the header says).
      const int qAtom = BM == 128 ? cg : 0, dAtom = D == 128 ? cg : 0;
      const int64_t qi0 = i0 + qAtom * 64, qiLast = qi0 + 63;
      wgmma::Accumulator<64> dq;
#pragma unroll
      for (int e = 0; e < 32; e++) dq.r[e] = 0.f;
      pinAccumulator(dq);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++)
        wgmma::Mma<64>::template shared<true, true>(dq, mnMajorOperand(dSt, BN, kk * 16, qAtom), mnMajorOperand(Ks, BN, kk * 16, dAtom),
                                                    true);
      wgmma::commit();
      wgmma::wait<0>();  // dQ
      pinAccumulator(dq);
      // Whether some query of the tile sees some key of the block (else its dQ is zero).
      const bool seesKeys = at.full || (vis.hi(qiLast) > j0 && vis.lo(qi0) < j0 + BN);
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const int64_t i = qi0 + warp * 16 + g + 8 * r;
        if (i >= s.sq || !seesKeys) continue;
        float* row = p.dqAcc + (bh * s.sq + i) * s.d + dAtom * 64 + 2 * t;
#pragma unroll
        for (int c = 0; c < 8; c++)
          mma::atomicAddPair(row + c * 8, dq.r[4 * c + 2 * r] * s.scale, dq.r[4 * c + 2 * r + 1] * s.scale, p.dqPairs);
      }
    }
    warpRelease(kvEmpty);  // every product of the item reading K and V has completed, as have its flags' reads
    // Element e of tile c by selects: storeKeyRows may leave its loop over e rolled here, and an
    // accumulator indexed by a variable would go to local memory.
    auto element = [](const wgmma::Accumulator<D>& a, int c, int e) {
      return e == 0 ? a.r[4 * c] : e == 1 ? a.r[4 * c + 1] : e == 2 ? a.r[4 * c + 2] : a.r[4 * c + 3];
    };
    storeKeyRows<D / 8>([&](int c, int e) { return element(dk, c, e); }, [&](int c, int e) { return element(dv, c, e); }, p, b,
                        it.kvh, j0, keyRow, 0);
  }
}

// The work counter of the blocks' items.
__device__ int g_keyPassItems;

template <int D>
void launchTmaKeyPassFor(const MmaKeyParams& p) {
  using Tiles = TmaKeyPassTiles<D>;
  const char* where = "flashAttentionBackward";
  TmaKeyPassParams tp{};
  tp.p = p;
  tp.q = tma::attentionTensorMap(p.in.q, std::string(where) + " q", p.s.b, p.s.heads, p.s.sq, p.s.d, Tiles::BM);
  tp.dOut = tma::attentionTensorMap(p.dOut, std::string(where) + " dOut", p.s.b, p.s.heads, p.s.sq, p.s.d, Tiles::BM);
  tp.k = tma::attentionTensorMap(p.in.k, std::string(where) + " k", p.s.b, p.s.kvHeads, p.s.sk, p.s.d, Tiles::BN);
  tp.v = tma::attentionTensorMap(p.in.v, std::string(where) + " v", p.s.b, p.s.kvHeads, p.s.sk, p.s.d, Tiles::BN);
  tp.keyBlocks = (p.s.sk + Tiles::BN - 1) / Tiles::BN;
  tp.items = tp.keyBlocks * p.s.kvHeads * p.s.b;
  tp.nextItem = zeroedItemCounter(g_keyPassItems);
  const unsigned blocks = persistentBlocks(tp.items);
  launchTiled<tmaKeyPassKernel<D>>(dim3(blocks), Tiles::bytes, tp, "flashAttentionBackward (wgmma)", Tiles::THREADS);
}

}  // namespace

void launchTmaKeyPass(const KeyParams& kp) {
  const MmaKeyParams p = mmaKeyParams(kp);
  // TMA reads bf16 rows 16-byte aligned and strided (asyncRows); other layouts take mma.sync.
  if (!(p.qAsync && p.kAsync && p.vAsync && p.dOutAsync)) return launchMmaKeyPass(kp);
  withWgmmaHeadDim(p.s.d, "flashAttentionBackward", [&](auto d) { launchTmaKeyPassFor<decltype(d)::value>(p); });
}

}  // namespace flash
}  // namespace tt
