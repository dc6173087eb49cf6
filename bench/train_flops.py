"""Expected multiply-adds of one supernet training step, before and after
the row form (glora/layer.h), under uniform sampling of the official space
(A, B in {lora_R, vector, scalar, none}, C in {lora_R, vector, none},
D, E in {scalar, vector, none}; every layer independently).

Counted from the formulas, not measured: every matrix product of a step
(merges, forward, the backward's input and weight gradients, the thin
products, the attention core and the backward's recomputed attention), per
image, at batch 64. Elementwise work (LayerNorm, GELU, sums) is left out.

    /usr/bin/python3 bench/train_flops.py
"""

ARCHS = {
    "vit-tiny-28": dict(T=17, C=128, H=512, depth=6, NP=16, kk=49),
    "vit-b16": dict(T=197, C=768, H=3072, depth=12, NP=196, kk=768),
}
KINDS = ["lora", "vector", "scalar", "none"]


def layer_macs(N, o, i, r, A, B, new):
    """Multiply-adds of one adapted layer for N rows (a step's batch)."""
    m = 0
    a_lora, b_lora = A == "lora", B == "lora"
    if not new or a_lora:
        # merge: LoRA products of A and B (elementwise parts left out)
        m += o * i * r * (a_lora + b_lora)
        m += N * o * i                       # forward on W'
        m += N * o * i                       # dX = G W'
        if A != "none" or B != "none" or a_lora:
            m += N * o * i                   # dW' = G^T X
            m += 2 * o * i * r * (a_lora + b_lora)  # factors from dW'
        return m
    # row form
    m += N * o * i                           # Y0 = X W0^T
    m += N * o * i                           # dX = (G (.) (1+a)) W0
    if b_lora:
        m += N * r * (i + o)                 # forward P = X Bu^T, P Bd^T
        if A in ("vector", "scalar"):
            m += N * r * (i + o)             # backward rebuilds Y from Y0
        m += N * r * i + N * o * r           # P again, dBd = G^T P
        m += N * o * r + N * r * i           # Q = G Bd, dBu = Q^T X
        m += N * r * i                       # dX += Q Bu
    return m


def step_macs(arch, batch, rank, new):
    a = ARCHS[arch]
    T, C, H = a["T"], a["C"], a["H"]
    N = batch * T
    shapes = [(3 * C, C), (C, C), (H, C), (C, H)]
    total = 0.0
    for _ in range(a["depth"]):
        for o, i in shapes:
            e = 0.0
            for A in KINDS:
                for B in KINDS:
                    e += layer_macs(N, o, i, rank, A, B, new) / 16.0
            total += e
        attn = 2 * N * T * C                 # scores and weighted sum
        total += attn + 2 * attn             # forward, backward (4 products of that size)
        if new:
            total += attn                    # backward recomputes the forward's attention
    total += batch * a["NP"] * a["kk"] * C   # patch embedding (forward only)
    return total


def main():
    for arch in ARCHS:
        old, new = step_macs(arch, 64, 4, False), step_macs(arch, 64, 4, True)
        print(f"{arch}: {2 * old / 64 / 1e9:.3f} -> {2 * new / 64 / 1e9:.3f} GFLOP per image per "
              f"step ({100 * (1 - new / old):.1f}% fewer)")


if __name__ == "__main__":
    main()
