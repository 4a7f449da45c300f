"""Where a fast-path batch goes at the bio shape, bs 64: fastai's Learner vs fastcf's LeanLearner vs bare loops (same model, data, optimizer).

    python bench/profile_fast_batch.py              # 300 timed batches per variant after 100 warm-up, one torch thread, 3 rounds
    python bench/profile_fast_batch.py --cprofile   # and the functions a LeanLearner batch spends its time in (cProfile)

Variants alternate within each round; it prints the medians, wall and CPU (process) milliseconds per batch, the CPU time
being the steadier figure on a shared machine. 'learner-*' train with `fit_one_cycle` (its schedulers, Recorder, `CatchUp`,
`FloatLosses`); 'bare-*' are a plain loop of forward, MSE, backward, step, zero_grad over the same batches.
"""
import sys; from pathlib import Path; sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import warnings; warnings.filterwarnings('ignore')
import argparse, functools, os, time, torch, statistics
torch.set_num_threads(1)
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastcf.data import synthetic_ratings
from fastcf.tensordata import TensorDataLoaders
from fastcf.learner import collab_learner, FloatLosses, LeanLearner
from fastcf.sparse import LazyAdam
from fastai.callback.core import Callback, CancelFitException
N, WARM = 300, 100
ratings = synthetic_ratings(preset='bio', seed=42)
dls = TensorDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64, device='cpu')

class Stop(Callback):
    "Time batches WARM .. WARM+N (wall and CPU), then stop"
    order = 99
    def before_fit(self): self.n = 0
    def after_batch(self):
        self.n += 1
        if self.n == WARM: self.t, self.c = time.perf_counter(), time.process_time()
        if self.n == WARM + N:
            self.ms = ((time.perf_counter() - self.t) / N * 1000, (time.process_time() - self.c) / N * 1000)
            raise CancelFitException()

def learner_ms(cls, sparse=True, kernel='auto', profile=None, loss_func=None):
    stop = Stop()
    kw = dict(opt_func=functools.partial(LazyAdam, kernel=kernel)) if sparse else {}
    if loss_func is not None: kw['loss_func'] = loss_func
    learn = collab_learner(dls, n_factors=50, y_range=(4., 10.5), sparse=sparse, cbs=[FloatLosses(), stop], **kw)
    learn.__class__ = cls
    with learn.no_bar(), learn.no_logging():
        if profile is not None: profile.enable()
        learn.fit_one_cycle(1, 5e-3, wd=0.1)
        if profile is not None: profile.disable()
    return stop.ms

def bare_ms(kind):
    learn = collab_learner(dls, n_factors=50, y_range=(4., 10.5), sparse=kind != 'dense')
    model = learn.model
    if kind == 'torch-sparseadam': opt = torch.optim.SparseAdam(list(model.parameters()), lr=1e-3)
    elif kind == 'dense':
        from fastai.optimizer import Adam
        opt = Adam(list(model.parameters()), lr=1e-3, wd=0.1)
    else:
        opt = LazyAdam(list(model.parameters()), lr=1e-3, wd=0.1, kernel=kind.split('-')[1])
        if 'nohook' not in kind: opt.watch(model)
    loss_f = torch.nn.MSELoss()
    it = iter(dls.train)
    for i in range(WARM + N):
        if i == WARM: t, c = time.perf_counter(), time.process_time()
        x, y = next(it)
        loss = loss_f(model(x), y[:, 0]); loss.backward(); opt.step(); opt.zero_grad()
    return (time.perf_counter() - t) / N * 1000, (time.process_time() - c) / N * 1000

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--cprofile', action='store_true', help='also profile a LeanLearner fit (functions by own time)')
    args = p.parse_args()
    variants = {'learner-fast (LeanLearner, numba)': lambda: learner_ms(LeanLearner),
                'learner-fast, torch kernel':       lambda: learner_ms(LeanLearner, kernel='torch'),
                "learner-fast in fastai's Learner":  lambda: learner_ms(Learner),
                'learner-fast as before (Learner, torch kernel, MSELossFlat)':
                    lambda: learner_ms(Learner, kernel='torch', loss_func=MSELossFlat()),
                'learner-dense (fastai Adam)':      lambda: learner_ms(Learner, sparse=False),
                'bare-lazy numba':                  lambda: bare_ms('lazy-numba'),
                'bare-lazy numba, no hooks':        lambda: bare_ms('lazy-numba-nohook'),
                'bare-lazy torch':                  lambda: bare_ms('lazy-torch'),
                'bare-torch-sparseadam':            lambda: bare_ms('torch-sparseadam'),
                'bare-dense (fastai Adam)':         lambda: bare_ms('dense')}
    res = {k: [] for k in variants}
    for r in range(args.rounds):
        for k, f in variants.items(): res[k].append(f())
    print(f"bio {len(ratings):,} ratings, bs 64, 1 torch thread, {N} batches after {WARM}; medians of {args.rounds}; "
          f"load {os.getloadavg()[0]:.1f}")
    for k, v in res.items():
        print(f"{k:60} wall {statistics.median(x[0] for x in v):7.2f}  cpu {statistics.median(x[1] for x in v):6.2f} ms/batch")
    if args.cprofile:
        import cProfile, pstats
        prof = cProfile.Profile()
        learner_ms(LeanLearner, profile=prof)
        pstats.Stats(prof).sort_stats('tottime').print_stats(25)

if __name__ == '__main__': main()
