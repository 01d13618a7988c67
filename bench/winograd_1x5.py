"""Experiment: the mini net's 1x5 dilated convs by 1-D Winograd F(4,5) written with torch ops, against
oneDNN's direct convolution (96 channels, a letter page's 207 x 160 cells at 1/8, 2 threads).

    python3 bench/winograd_1x5.py

Prints the transform check, the relative error against F.conv2d and the median time of each, per
dilation. (2026-11-25 on a Zen 1 EPYC: exact to 1.5e-6 but 65-67 ms against 41-45 ms: the transforms'
memory passes cost more than the 2.5x fewer multiplies save, so the shipped net keeps oneDNN for them.)
"""

import numpy as np, torch, time, torch.nn.functional as F

torch.set_num_threads(2)
pts = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5]
m, r = 4, 5
n = m + r - 1
AT = np.zeros((m, n))
G = np.zeros((n, r))
for i, a in enumerate(pts):
    f = np.prod([a - b for l, b in enumerate(pts) if l != i])
    for j in range(m):
        AT[j, i] = a**j
    for k in range(r):
        G[i, k] = a**k / f
AT[m - 1, n - 1] = 1
G[n - 1, r - 1] = 1
# solve BT by least squares from random samples: y_j = sum_a AT[j,a] (G g)_a (BT d)_a
rng = np.random.default_rng(0)
rowsA, rhs = [], []
for _ in range(400):
    g = rng.standard_normal(r)
    d = rng.standard_normal(n)
    y = np.array([sum(g[k] * d[j + k] for k in range(r)) for j in range(m)])
    Gg = G @ g
    for j in range(m):
        rowsA.append(np.outer(AT[j] * Gg, d).ravel())
        rhs.append(y[j])
sol, res, *_ = np.linalg.lstsq(np.array(rowsA), np.array(rhs), rcond=None)
BT = sol.reshape(n, n)
g = rng.standard_normal(r)
d = rng.standard_normal(n)
y = np.array([sum(g[k] * d[j + k] for k in range(r)) for j in range(m)])
print("check", np.abs(AT @ ((G @ g) * (BT @ d)) - y).max())
np.set_printoptions(precision=4, suppress=True)
print(BT)
ATt = torch.tensor(AT, dtype=torch.float32)
Gt = torch.tensor(G, dtype=torch.float32)
BTt = torch.tensor(BT, dtype=torch.float32)


def wino_conv1x5(x, w, b, d):
    """x (B,C,H,W) channels_last; w (Co,C,1,5); dilation d along W; zero padding 2d."""
    B, C, H, W = x.shape
    Co = w.shape[0]
    T = -(-W // (4 * d))
    Wp = T * 4 * d
    xh = x.permute(0, 2, 3, 1)  # (B,H,W,C) contiguous for channels_last
    xp = F.pad(xh, (0, 0, 2 * d, Wp + 2 * d - W))  # (B,H,Wp+4d,C)
    blocks = xp.reshape(B, H, Wp // d + 4, d, C)
    tiles = blocks.unfold(2, 8, 4)  # (B,H,T,d,C,8)
    V = torch.matmul(tiles, BTt.T)  # (B,H,T,d,C,8)
    V = V.permute(5, 0, 1, 2, 3, 4).reshape(8, -1, C)  # (8,N,C)
    U = torch.einsum("ak,ock->aco", Gt, w[:, :, 0, :])  # (8,C,Co)
    M = torch.bmm(V, U)  # (8,N,Co)
    Y = torch.matmul(ATt, M.reshape(8, -1)).reshape(4, B, H, T, d, Co)
    Y = Y.permute(1, 2, 3, 0, 4, 5).reshape(B, H, Wp, Co)[:, :, :W] + b
    return Y.permute(0, 3, 1, 2)


c, h, wd = 96, 207, 160
x = torch.randn(1, c, h, wd).contiguous(memory_format=torch.channels_last)
wt = torch.randn(c, c, 1, 5) * 0.05
bb = torch.randn(c)


def bench(f, n=7):
    f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[n // 2] * 1e3


for dd in (2, 4):
    ref = F.conv2d(x, wt.contiguous(memory_format=torch.channels_last), bb, padding=(0, 2 * dd), dilation=(1, dd))
    out = wino_conv1x5(x, wt, bb, dd)
    print(
        dd,
        "err",
        ((out - ref).abs().max() / ref.abs().max()).item(),
        "onednn",
        bench(
            lambda: F.conv2d(
                x, wt.contiguous(memory_format=torch.channels_last), bb, padding=(0, 2 * dd), dilation=(1, dd)
            )
        ),
        "wino",
        bench(lambda: wino_conv1x5(x, wt, bb, dd)),
    )
