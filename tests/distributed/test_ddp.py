"""Several learners with torch.distributed (gloo, two processes on this machine): averaged gradients on two halves of
a batch equal one process's on the whole batch, and a step of the averaged optimiser leaves both replicas equal to
the single-process learner."""

import multiprocessing as mp
import socket

import torch
from torch import nn

from marlkit.distributed.ddp import AveragedOptimizer, broadcast_parameters, join_group

#: Seconds the two processes may take.
LIMIT = 90


def _model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 6, generator=g), torch.randn(32, 2, generator=g)


def _learner(rank, world, port, out):
    torch.set_num_threads(1)
    join_group(rank, world, port)
    model = _model(seed=rank)  # different initial weights: broadcast_parameters must make them rank 0's
    broadcast_parameters(model)
    opt = AveragedOptimizer(torch.optim.Adam(model.parameters(), lr=0.01))
    x, y = _data()
    part = slice(rank * 16, (rank + 1) * 16)
    opt.zero_grad()
    nn.functional.mse_loss(model(x[part]), y[part]).backward()
    opt.step()
    out.put(
        (
            rank,
            [p.grad.numpy().copy() for p in model.parameters()],
            [p.detach().numpy().copy() for p in model.parameters()],
        )
    )
    import torch.distributed as dist

    dist.destroy_process_group()


def test_two_gloo_learners_average_to_one_learner_on_the_whole_batch():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_learner, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = dict((r, (g, w)) for r, g, w in (out.get(timeout=LIMIT) for _ in procs))
    finally:
        for p in procs:
            p.join(timeout=LIMIT)
            if p.is_alive():
                p.kill()
    model = _model(seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = _data()
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for rank in (0, 1):
        for got, want in zip(results[rank][0], grads):
            torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-6)
        for got, want in zip(results[rank][1], model.parameters()):
            torch.testing.assert_close(torch.from_numpy(got), want.detach(), rtol=1e-5, atol=1e-6)
