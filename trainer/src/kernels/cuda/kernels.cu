// ferrotune's CUDA kernels, compiled at run time with NVRTC.
//
// No headers are included (NVRTC ships none): bf16 values are handled as their 16 raw bits,
// widened to f32 for arithmetic and rounded back to nearest-even. Every kernel computes in f32.
// Each template is instantiated for f32 (`_f32`) and bf16 (`_bf16`) at the end of the file.

typedef unsigned short bf16;
typedef unsigned long long u64;

#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float ld(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16* p, size_t i) {
    return __uint_as_float(((unsigned)p[i]) << 16);
}
__device__ __forceinline__ void st(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16* p, size_t i, float v) {
    unsigned u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        p[i] = (bf16)((u >> 16) | 0x40u);  // quiet NaN
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    p[i] = (bf16)(u >> 16);
}

// Sum / max over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ float block_sum(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < warps ? sh[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float block_max(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < warps ? sh[lane] : NEG_INF;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// ---- RMSNorm: one block per row ------------------------------------------------------------

template <typename T>
__device__ void rms_norm(const T* x, const T* w, T* y, float* rstd, int d, float eps) {
    __shared__ float sh[32];
    size_t row = blockIdx.x;
    const T* xr = x + row * d;
    float s = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = ld(xr, j);
        s += v * v;
    }
    s = block_sum(s, sh);
    float r = 1.f / sqrtf(s / (float)d + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int j = threadIdx.x; j < d; j += blockDim.x) st(y + row * d, j, ld(w, j) * (ld(xr, j) * r));
}

// dx = r·(dy⊙w) − x·r³·Σ(dy⊙w⊙x)/D
template <typename T>
__device__ void rms_norm_dx(const T* x, const T* w, const float* rstd, const T* dy, T* dx, int d) {
    __shared__ float sh[32];
    size_t row = blockIdx.x;
    const T* xr = x + row * d;
    const T* gr = dy + row * d;
    float r = rstd[row];
    float s = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) s += ld(gr, j) * ld(w, j) * ld(xr, j);
    s = block_sum(s, sh);
    float c = r * r * r * s / (float)d;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        st(dx + row * d, j, r * (ld(gr, j) * ld(w, j)) - ld(xr, j) * c);
}

// partial[chunk][j] = Σ over the chunk's rows of dy·x·r (grid: column blocks × row chunks).
template <typename T>
__device__ void rms_norm_dw_partial(const T* x, const float* rstd, const T* dy, float* partial,
                                    int n, int d, int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = min(n, r0 + rows_per_chunk);
    float acc = 0.f;
    for (int r = r0; r < r1; ++r) acc += ld(dy, (size_t)r * d + j) * (ld(x, (size_t)r * d + j) * rstd[r]);
    partial[(size_t)blockIdx.y * d + j] = acc;
}

// out[j] = Σ_c partial[c][j], in chunk order.
extern "C" __global__ void sum_chunks_f32(const float* partial, float* out, int chunks, int d) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    float acc = 0.f;
    for (int c = 0; c < chunks; ++c) acc += partial[(size_t)c * d + j];
    out[j] = acc;
}

// ---- SwiGLU ---------------------------------------------------------------------------------

template <typename T>
__device__ void swiglu(const T* gate, const T* up, T* y, size_t n) {
    GRID_STRIDE(i, n) {
        float g = ld(gate, i);
        st(y, i, g / (1.f + expf(-g)) * ld(up, i));
    }
}

template <typename T>
__device__ void swiglu_backward(const T* gate, const T* up, const T* dy, T* dgate, T* dup, size_t n) {
    GRID_STRIDE(i, n) {
        float g = ld(gate, i), u = ld(up, i), d = ld(dy, i);
        float sig = 1.f / (1.f + expf(-g));
        st(dgate, i, d * u * sig * (1.f + g * (1.f - sig)));
        st(dup, i, d * g * sig);
    }
}

// ---- RoPE (rotate_half): x (N, H, hd), one thread per rotated pair ----------------------------

template <typename T>
__device__ void rope(const T* x, const float* cos_t, const float* sin_t, const unsigned* pos, T* y,
                     int n, int h, int half, float sign) {
    size_t total = (size_t)n * h * half;
    GRID_STRIDE(t, total) {
        int i = t % half;
        size_t nh = t / half;
        int row = nh / h;
        size_t base = nh * 2 * half;
        size_t at = (size_t)pos[row] * half + i;
        float c = cos_t[at], s = sign * sin_t[at];
        float x1 = ld(x, base + i), x2 = ld(x, base + half + i);
        st(y, base + i, x1 * c - x2 * s);
        st(y, base + half + i, x2 * c + x1 * s);
    }
}

// ---- Embedding ------------------------------------------------------------------------------

template <typename T>
__device__ void embedding(const unsigned* ids, const T* table, T* y, size_t n, int d) {
    GRID_STRIDE(t, n * d) {
        size_t row = t / d;
        st(y, t, ld(table, (size_t)ids[row] * d + t % d));
    }
}

// Row uniq[u] of the (V, D) f32 gradient = Σ of the rows rows[starts[u]..starts[u+1]] of dy, in
// order (grid: distinct ids × column blocks). Deterministic: no atomics.
template <typename T>
__device__ void embedding_backward(const unsigned* uniq, const unsigned* starts, const unsigned* rows,
                                   const T* dy, float* out, int d) {
    int j = blockIdx.y * blockDim.x + threadIdx.x;
    if (j >= d) return;
    unsigned u = blockIdx.x;
    float acc = 0.f;
    for (unsigned k = starts[u]; k < starts[u + 1]; ++k) acc += ld(dy, (size_t)rows[k] * d + j);
    out[(size_t)uniq[u] * d + j] = acc;
}

// ---- Dropout: the counter-based hash of kernels/dropout.rs -----------------------------------

__device__ __forceinline__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// SplitMix64's state increment: element j of a segment hashes key + (j + 1)·γ.
#define GAMMA 0x9E3779B97F4A7C15ull

// One element of base + dropout(x) from its hash bits (b is base's value, or 0 without one): a
// dropped element keeps b; each product and sum is rounded once, as on the CPU.
__device__ __forceinline__ float dropped(u64 bits, float x, float b, bool has_base, float p,
                                         float scale) {
    float u = (float)(bits >> 40) * (1.f / 16777216.f);
    if (u < p) return b;
    float v = __fmul_rn(x, scale);
    return has_base ? __fadd_rn(b, v) : v;
}

// y = base + dropout(x) (base may be null; a dropped element keeps base, or is 0). x is split
// into equal segments of `seg` elements (one per sequence); segment s uses keys[s] and counts its
// elements from 0. The segment index takes a 32-bit division where the tensor allows it.
template <typename T>
__device__ void dropout(const T* base, const T* x, T* y, size_t n, size_t seg, const u64* keys,
                        float p, float scale) {
    bool narrow = n <= 0xffffffffull;
    GRID_STRIDE(i, n) {
        size_t s = narrow ? (size_t)((unsigned)i / (unsigned)seg) : i / seg;
        u64 bits = mix64(keys[s] + (i - s * seg + 1) * GAMMA);
        st(y, i, dropped(bits, ld(x, i), base ? ld(base, i) : 0.f, base != nullptr, p, scale));
    }
}

// ---- Vector loads and the running log-sum-exp ----------------------------------------------

// Eight consecutive elements at p (16-byte aligned for bf16, 32 for f32), widened to f32, and back.
__device__ __forceinline__ void ld8(const bf16* p, float* x) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    unsigned w[4] = {u.x, u.y, u.z, u.w};
    for (int k = 0; k < 4; ++k) {
        x[2 * k] = __uint_as_float(w[k] << 16);
        x[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
}
__device__ __forceinline__ void ld8(const float* p, float* x) {
    float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w; x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
}
__device__ __forceinline__ void st8(bf16* p, const float* x) {
    bf16 h[8];
    for (int k = 0; k < 8; ++k) st(h, k, x[k]);
    unsigned w[4];
    for (int k = 0; k < 4; ++k) w[k] = (unsigned)h[2 * k] | ((unsigned)h[2 * k + 1] << 16);
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ void st8(float* p, const float* x) {
    reinterpret_cast<float4*>(p)[0] = make_float4(x[0], x[1], x[2], x[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(x[4], x[5], x[6], x[7]);
}

// `dropout` eight consecutive elements a thread (seg a multiple of 8, pointers 16-byte aligned):
// one segment index and key per eight, the counter stepped by γ from one element to the next; the
// same values as `dropout`.
template <typename T>
__device__ void dropout8(const T* base, const T* x, T* y, size_t n8, size_t seg, const u64* keys,
                         float p, float scale) {
    bool narrow = n8 <= 0xffffffffull / 8;
    GRID_STRIDE(u, n8) {
        size_t i = u * 8;
        size_t s = narrow ? (size_t)((unsigned)i / (unsigned)seg) : i / seg;
        u64 c = keys[s] + (i - s * seg + 1) * GAMMA;
        float xv[8], bv[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, yv[8];
        ld8(x + i, xv);
        if (base) ld8(base + i, bv);
        for (int k = 0; k < 8; ++k, c += GAMMA) {
            yv[k] = dropped(mix64(c), xv[k], bv[k], base != nullptr, p, scale);
        }
        st8(y + i, yv);
    }
}

// Folds x into a running (max m, Σ exp(· − m)) pair.
__device__ __forceinline__ void online_lse(float x, float& m, float& z) {
    if (x == NEG_INF) return;
    if (x > m) {
        z = z * expf(m - x) + 1.f;
        m = x;
    } else {
        z += expf(x - m);
    }
}

// ---- Attention pieces (the GEMMs are cuBLAS) --------------------------------------------------
//
// Scores are laid out (B, Hkv, G·Tq, Tk): row r is query i = r % Tq of batch b = r / rows_per_b.
// Query i sees key j iff j <= i + (Tk − Tq) and mask[b·Tk + j] != 0 (mask may be null). One warp
// handles a row; keys past the causal limit are never read (their outputs are written as 0), and
// rows whose length is a multiple of 8 are read and written eight elements at a time.

__device__ __forceinline__ bool key_ok(const unsigned char* mask, size_t r, int j, int tk,
                                       size_t rows_per_b) {
    return mask == nullptr || mask[(r / rows_per_b) * tk + j] != 0;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// p = softmax(scale · s) over visible keys, lse = its log-sum-exp (−inf and p = 0 if none).
template <typename T>
__device__ void attn_softmax(const T* s, T* p, float* lse, size_t rows, int tq, int tk,
                             size_t rows_per_b, const unsigned char* mask, float scale) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const T* sr = s + r * tk;
    T* pr = p + r * tk;
    int last = (int)(r % tq) + (tk - tq);
    bool vec = tk % 8 == 0;
    float m = NEG_INF, z = 0.f;
    if (vec) {
        for (int c = lane; 8 * c <= last; c += 32) {
            float x[8];
            ld8(sr + 8 * c, x);
            for (int k = 0; k < 8; ++k)
                if (8 * c + k <= last && key_ok(mask, r, 8 * c + k, tk, rows_per_b))
                    online_lse(scale * x[k], m, z);
        }
    } else {
        for (int j = lane; j <= last; j += 32)
            if (key_ok(mask, r, j, tk, rows_per_b)) online_lse(scale * ld(sr, j), m, z);
    }
    float bm = warp_max(m);
    z = warp_sum(m == NEG_INF ? 0.f : z * expf(m - bm));
    float l = bm == NEG_INF ? NEG_INF : bm + logf(z);
    if (lane == 0) lse[r] = l;
    if (vec) {
        for (int c = lane; c < tk / 8; c += 32) {
            float x[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            if (8 * c <= last && l != NEG_INF) {
                ld8(sr + 8 * c, x);
                for (int k = 0; k < 8; ++k) {
                    int j = 8 * c + k;
                    x[k] = j <= last && key_ok(mask, r, j, tk, rows_per_b) ? expf(scale * x[k] - l) : 0.f;
                }
            }
            st8(pr + 8 * c, x);
        }
    } else {
        for (int j = lane; j < tk; j += 32)
            st(pr, j, j <= last && l != NEG_INF && key_ok(mask, r, j, tk, rows_per_b)
                          ? expf(scale * ld(sr, j) - l) : 0.f);
    }
}

// From the recomputed scores s, the saved lse and dP = dO·Vᵀ: p (for dV = Pᵀ·dO) and
// ds = scale · p ⊙ (dP − Σ_c dO⊙O), with the row sums delta given.
template <typename T>
__device__ void attn_grad_scores(const T* s, const T* dp, const float* lse, const float* delta,
                                 T* p, T* ds, size_t rows, int tq, int tk, size_t rows_per_b,
                                 const unsigned char* mask, float scale) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float l = lse[r], dl = delta[r];
    int last = (int)(r % tq) + (tk - tq);
    size_t at = r * tk;
    if (tk % 8 == 0) {
        for (int c = lane; c < tk / 8; c += 32) {
            float pv[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            float g[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            if (8 * c <= last && l != NEG_INF) {
                float x[8], d[8];
                ld8(s + at + 8 * c, x);
                ld8(dp + at + 8 * c, d);
                for (int k = 0; k < 8; ++k) {
                    int j = 8 * c + k;
                    pv[k] = j <= last && key_ok(mask, r, j, tk, rows_per_b) ? expf(scale * x[k] - l) : 0.f;
                    g[k] = scale * pv[k] * (d[k] - dl);
                }
            }
            st8(p + at + 8 * c, pv);
            st8(ds + at + 8 * c, g);
        }
    } else {
        for (int j = lane; j < tk; j += 32) {
            bool on = j <= last && l != NEG_INF && key_ok(mask, r, j, tk, rows_per_b);
            float pv = on ? expf(scale * ld(s, at + j) - l) : 0.f;
            st(p, at + j, pv);
            st(ds, at + j, on ? scale * pv * (ld(dp, at + j) - dl) : 0.f);
        }
    }
}

// y[b][c][a][:] = x[b][a][c][:] for x of shape (nb, na, nc, d): the two middle axes swapped
// (attention's heads-first layouts). `swap_axes_16b` moves rows of d 16-byte units.
template <typename T>
__device__ void swap_axes(const T* x, T* y, size_t n, int na, int nc, int d) {
    GRID_STRIDE(i, n) {
        size_t t = i / d;
        int a = t % na;
        t /= na;
        int c = t % nc;
        size_t b = t / nc;
        y[i] = x[((b * na + a) * nc + c) * d + i % d];
    }
}

extern "C" __global__ void swap_axes_16b(const uint4* x, uint4* y, size_t n, int na, int nc, int d) {
    swap_axes(x, y, n, na, nc, d);
}

// out[r] = Σ_c a[r][c]·b[r][c], one warp per row.
template <typename T>
__device__ void row_dot(const T* a, const T* b, float* out, size_t rows, int cols) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float acc = 0.f;
    for (int c = lane; c < cols; c += 32) acc += ld(a, r * cols + c) * ld(b, r * cols + c);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) out[r] = acc;
}

// ---- Cross-entropy over a chunk of logits, gradient in place --------------------------------
//
// Row r with target t >= 0: loss[r] = lse − logit[t]; logits become
// grad_scale · (softmax − onehot(t)). A row with target −1 gets loss 0 and a zero gradient.

// One block per row. Rows whose length is a multiple of 8 are read eight elements at a time
// (the rows then start 16-byte aligned); the log-sum-exp takes one read of the row (a running
// max and sum per thread), the gradient a second.
template <typename T>
__device__ void cross_entropy(T* logits, const int* targets, float* loss, int v, float grad_scale) {
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    T* lr = logits + r * v;
    int t = targets[r];
    if (t < 0) {
        for (int j = threadIdx.x; j < v; j += blockDim.x) st(lr, j, 0.f);
        if (threadIdx.x == 0) loss[r] = 0.f;
        return;
    }
    bool vec = v % 8 == 0;
    float m = NEG_INF, z = 0.f;
    if (vec) {
        for (int c = threadIdx.x; c < v / 8; c += blockDim.x) {
            float x[8];
            ld8(lr + 8 * c, x);
            for (int k = 0; k < 8; ++k) online_lse(x[k], m, z);
        }
    } else {
        for (int j = threadIdx.x; j < v; j += blockDim.x) online_lse(ld(lr, j), m, z);
    }
    float bm = block_max(m, sh);
    z = m == NEG_INF ? 0.f : z * expf(m - bm);
    z = block_sum(z, sh);
    float l = bm + logf(z);
    float target_logit = ld(lr, t);
    __syncthreads();
    if (threadIdx.x == 0) loss[r] = l - target_logit;
    if (vec) {
        for (int c = threadIdx.x; c < v / 8; c += blockDim.x) {
            float x[8];
            ld8(lr + 8 * c, x);
            for (int k = 0; k < 8; ++k)
                x[k] = grad_scale * (expf(x[k] - l) - (8 * c + k == t ? 1.f : 0.f));
            st8(lr + 8 * c, x);
        }
    } else {
        for (int j = threadIdx.x; j < v; j += blockDim.x)
            st(lr, j, grad_scale * (expf(ld(lr, j) - l) - (j == t ? 1.f : 0.f)));
    }
}

// ---- NF4 dequantisation (quant/nf4.rs layout) -------------------------------------------------

template <typename T>
__device__ void nf4_dequantize(const unsigned char* packed, const unsigned char* codes,
                               const float* scales, const float* nf4, const float* dyn_map,
                               float offset, T* out, size_t n) {
    GRID_STRIDE(i, n) {
        unsigned char b = packed[i >> 1];
        int q = (i & 1) ? (b & 15) : (b >> 4);
        size_t block = i / 64;
        // Rounded multiply and add, never fused: the CPU path rounds each step the same way.
        float absmax = __fadd_rn(__fmul_rn(dyn_map[codes[block]], scales[block / 256]), offset);
        st(out, i, __fmul_rn(nf4[q], absmax));
    }
}

// ---- Optimizer state: gradient accumulation, squared norm, AdamW (f32 buffers) -------------

// dst[offset + i] += src[i]: a micro-batch's gradient added into the flat f32 buffer.
template <typename T>
__device__ void accumulate(float* dst, size_t offset, const T* src, size_t n) {
    GRID_STRIDE(i, n) dst[offset + i] = __fadd_rn(dst[offset + i], ld(src, i));
}

extern "C" __global__ void zero_f32(float* x, size_t n) {
    GRID_STRIDE(i, n) x[i] = 0.f;
}

// partial[block] = Σ x[i]² in f64 over the block's grid-stride elements; each thread sums its
// elements in order and the block adds the threads' sums in a fixed tree, so the result depends
// on the grid size only (the caller fixes it).
extern "C" __global__ void sum_squares_f32(const float* x, size_t n, double* partial) {
    __shared__ double sh[1024];
    double s = 0.0;
    GRID_STRIDE(i, n) {
        double v = (double)x[i];
        s += v * v;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (unsigned o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// One AdamW step of elements [offset, offset + n) in place, with the gradient first multiplied
// by grad_scale (clipping). The same operations in the same order as the CPU path
// (train/optim.rs), each rounded once: `__f*_rn` keeps NVRTC from fusing them into FMAs. Where
// `shadow` is given, the updated value is also written there rounded to bf16 (the model's copy).
extern "C" __global__ void adamw_f32(float* p, bf16* shadow, const float* g, float* m, float* v,
                                     size_t offset, size_t n, float grad_scale, float factor,
                                     float lerp_weight,
                                     float keep, int small_weight, float beta2,
                                     float one_minus_beta2, float bc2_sqrt, float eps,
                                     float neg_step) {
    GRID_STRIDE(k, n) {
        size_t i = offset + k;
        float gi = __fmul_rn(g[i], grad_scale);
        float pi = __fmul_rn(p[i], factor);
        float mi = m[i];
        mi = small_weight ? __fadd_rn(mi, __fmul_rn(lerp_weight, __fsub_rn(gi, mi)))
                          : __fsub_rn(gi, __fmul_rn(__fsub_rn(gi, mi), keep));
        float vi = __fadd_rn(__fmul_rn(v[i], beta2), __fmul_rn(__fmul_rn(one_minus_beta2, gi), gi));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        float pn = __fadd_rn(pi, __fdiv_rn(__fmul_rn(neg_step, mi), denom));
        p[i] = pn;
        if (shadow) st(shadow, i, pn);
        m[i] = mi;
        v[i] = vi;
    }
}

// ---- Instantiations ---------------------------------------------------------------------------

#define INSTANTIATE(T, S)                                                                           \
    extern "C" __global__ void rms_norm_##S(const T* x, const T* w, T* y, float* rstd, int d,      \
                                            float eps) { rms_norm(x, w, y, rstd, d, eps); }       \
    extern "C" __global__ void rms_norm_dx_##S(const T* x, const T* w, const float* rstd,          \
                                               const T* dy, T* dx, int d) {                        \
        rms_norm_dx(x, w, rstd, dy, dx, d);                                                        \
    }                                                                                              \
    extern "C" __global__ void rms_norm_dw_partial_##S(const T* x, const float* rstd, const T* dy, \
                                                       float* partial, int n, int d, int rows) {   \
        rms_norm_dw_partial(x, rstd, dy, partial, n, d, rows);                                     \
    }                                                                                              \
    extern "C" __global__ void swiglu_##S(const T* g, const T* u, T* y, size_t n) {                \
        swiglu(g, u, y, n);                                                                        \
    }                                                                                              \
    extern "C" __global__ void swiglu_backward_##S(const T* g, const T* u, const T* dy, T* dg,     \
                                                   T* du, size_t n) {                              \
        swiglu_backward(g, u, dy, dg, du, n);                                                      \
    }                                                                                              \
    extern "C" __global__ void rope_##S(const T* x, const float* c, const float* s,                \
                                        const unsigned* pos, T* y, int n, int h, int half,        \
                                        float sign) { rope(x, c, s, pos, y, n, h, half, sign); }  \
    extern "C" __global__ void embedding_##S(const unsigned* ids, const T* table, T* y, size_t n,  \
                                             int d) { embedding(ids, table, y, n, d); }           \
    extern "C" __global__ void embedding_backward_##S(const unsigned* uniq, const unsigned* starts,\
                                                      const unsigned* rows, const T* dy,           \
                                                      float* out, int d) {                         \
        embedding_backward(uniq, starts, rows, dy, out, d);                                        \
    }                                                                                              \
    extern "C" __global__ void dropout_##S(const T* base, const T* x, T* y, size_t n, size_t seg,   \
                                           const u64* keys, float p, float scale) {               \
        dropout(base, x, y, n, seg, keys, p, scale);                                               \
    }                                                                                              \
    extern "C" __global__ void dropout8_##S(const T* base, const T* x, T* y, size_t n8,            \
                                            size_t seg, const u64* keys, float p, float scale) {   \
        dropout8(base, x, y, n8, seg, keys, p, scale);                                             \
    }                                                                                              \
    extern "C" __global__ void attn_softmax_##S(const T* s, T* p, float* lse, size_t rows, int tq, \
                                                int tk, size_t rows_per_b,                         \
                                                const unsigned char* mask, float scale) {          \
        attn_softmax(s, p, lse, rows, tq, tk, rows_per_b, mask, scale);                            \
    }                                                                                              \
    extern "C" __global__ void attn_grad_scores_##S(const T* s, const T* dp, const float* lse,     \
                                                    const float* delta, T* p, T* ds, size_t rows,  \
                                                    int tq, int tk, size_t rows_per_b,             \
                                                    const unsigned char* mask, float scale) {      \
        attn_grad_scores(s, dp, lse, delta, p, ds, rows, tq, tk, rows_per_b, mask, scale);         \
    }                                                                                              \
    extern "C" __global__ void swap_axes_##S(const T* x, T* y, size_t n, int na, int nc, int d) {  \
        swap_axes(x, y, n, na, nc, d);                                                             \
    }                                                                                              \
    extern "C" __global__ void row_dot_##S(const T* a, const T* b, float* out, size_t rows,        \
                                           int cols) { row_dot(a, b, out, rows, cols); }          \
    extern "C" __global__ void cross_entropy_##S(T* logits, const int* targets, float* loss,       \
                                                 int v, float grad_scale) {                        \
        cross_entropy(logits, targets, loss, v, grad_scale);                                       \
    }                                                                                              \
    extern "C" __global__ void nf4_dequantize_##S(const unsigned char* packed,                     \
                                                  const unsigned char* codes, const float* scales, \
                                                  const float* nf4, const float* dyn_map,          \
                                                  float offset, T* out, size_t n) {                \
        nf4_dequantize(packed, codes, scales, nf4, dyn_map, offset, out, n);                       \
    }                                                                                              \
    extern "C" __global__ void accumulate_##S(float* dst, size_t offset, const T* src, size_t n) { \
        accumulate(dst, offset, src, n);                                                           \
    }

INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
