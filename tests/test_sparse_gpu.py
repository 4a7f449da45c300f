"""The fast training path on a CUDA device (issue 23): `LazyAdam` gives the same weights on the GPU as on the CPU, and
`TensorDataLoaders` keeps its tensors on the device, so a batch never crosses the bus. Skipped without a GPU."""
import math
import pandas as pd, pytest, torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def _train_tiny(device):
    "A tiny sparse dot model, 40 steps of LazyAdam with a one-cycle-like lr and momentum, on `device`"
    from fastcf.models import EmbeddingDotBias
    from fastcf.sparse import LazyAdam
    torch.manual_seed(0)
    model = EmbeddingDotBias(4, 30, 20, sparse=True).to(device)
    opt = LazyAdam(list(model.parameters()), lr=1e-2, wd=0.1)
    opt.watch(model)
    gen = torch.Generator().manual_seed(1)
    for i in range(40):
        x = torch.stack([torch.randint(0, 30, (16,), generator=gen), torch.randint(0, 20, (16,), generator=gen)], 1).to(device)
        y = torch.rand(16, generator=gen).to(device) * 4 + 1
        opt.set_hypers(lr=5e-3 * (1 + math.cos(math.pi * i / 40)) / 2 + 1e-4, mom=0.85 + 0.1 * i / 40)
        ((model(x) - y) ** 2).mean().backward()
        opt.step(); opt.zero_grad()
    opt.catch_up()
    return {k: v.cpu() for k, v in model.state_dict().items()}


def test_lazy_adam_cuda_equals_cpu():
    cpu, gpu = _train_tiny('cpu'), _train_tiny('cuda')
    for k in cpu: torch.testing.assert_close(gpu[k], cpu[k], rtol=1e-4, atol=1e-6)


def test_fast_path_on_cuda_trains_exports_and_ranks():
    from fastcf.data import synthetic_ratings
    from fastcf.export import from_learner
    from fastcf.learner import train
    ratings = synthetic_ratings(n_users=300, n_items=60, seed=0)
    learn = train(ratings, 'user', 'item', 'rating', epochs=2, lr=5e-2, y_range=(0, 5.5), log=lambda line: None)
    assert learn.dls.train.x.device.type == 'cuda'
    x, y = learn.dls.one_batch()
    assert x.device.type == 'cuda' and y.device.type == 'cuda'
    assert learn.recorder.values[-1][1] < 0.8 * ratings.rating.var()
    recs = learn.recommend_all(k=5)
    assert len(recs) == 5 * ratings.user.nunique()
    assert from_learner(learn).user_counts.sum() == learn.dls.train.n
