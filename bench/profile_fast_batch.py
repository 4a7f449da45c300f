"""Where a fast-path batch goes at the bio shape, bs 64: fastai Learner vs bare loops (same model, data, optimizer).

    python bench/profile_fast_batch.py      # 300 timed batches per variant after 100 warm-up, one torch thread
"""
import sys; from pathlib import Path; sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import warnings; warnings.filterwarnings('ignore')
import time, torch, statistics
torch.set_num_threads(1)
from fastai.torch_core import set_seed
from fastcf.data import synthetic_ratings
from fastcf.tensordata import TensorDataLoaders
from fastcf.learner import collab_learner, FloatLosses
from fastcf.sparse import LazyAdam
from fastai.callback.core import Callback, CancelFitException
N = 300
ratings = synthetic_ratings(preset='bio', seed=42)
dls = TensorDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64, device='cpu')
def learner_ms(sparse):
    class Stop(Callback):
        order = 99
        def before_fit(self): self.n, self.t = 0, None
        def after_batch(self):
            self.n += 1
            if self.n == 100: self.t = time.perf_counter()
            if self.n == 100 + N: self.ms = (time.perf_counter() - self.t) / N * 1000; raise CancelFitException()
    stop = Stop()
    learn = collab_learner(dls, n_factors=50, y_range=(4., 10.5), sparse=sparse, cbs=[FloatLosses(), stop])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 5e-3, wd=0.1)
    return stop.ms
def bare_ms(kind):
    learn = collab_learner(dls, n_factors=50, y_range=(4., 10.5), sparse=kind != 'dense')
    model = learn.model
    if kind == 'torch-sparseadam':
        opt = torch.optim.SparseAdam(list(model.parameters()), lr=1e-3); hooks = []
    elif kind == 'dense':
        from fastai.optimizer import Adam
        opt = Adam(list(model.parameters()), lr=1e-3, wd=0.1); hooks = []
    else:
        opt = LazyAdam(list(model.parameters()), lr=1e-3, wd=0.1)
        hooks = opt.watch(model) if kind == 'lazy' else []
    loss_f = torch.nn.MSELoss()
    it = iter(dls.train)
    for i in range(100 + N):
        if i == 100: t = time.perf_counter()
        x, y = next(it)
        loss = loss_f(model(x), y[:, 0]); loss.backward(); opt.step(); opt.zero_grad()
    return (time.perf_counter() - t) / N * 1000
res = {k: [] for k in ('learner-fast', 'learner-dense', 'bare-lazy', 'bare-lazy-nohook', 'bare-torch-sparseadam', 'bare-dense')}
for r in range(1):
    res['learner-fast'].append(learner_ms(True)); res['learner-dense'].append(learner_ms(False))
    for k in ('lazy', 'lazy-nohook', 'torch-sparseadam', 'dense'): res['bare-' + k].append(bare_ms(k))
for k, v in res.items(): print(f"{k:24} {statistics.median(v):7.2f} ms/batch  {[round(x, 2) for x in v]}")
